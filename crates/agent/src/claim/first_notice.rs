//! The default claim schema: an insurance first notice of loss, with its questions, their rephrasings
//! and the entities that fill each field.

use super::{ClaimSchema, EntityKind, FieldKind, FieldSpec};

impl Default for ClaimSchema {
    /// Insurance first notice of loss.
    fn default() -> Self {
        let field = |name: &str, kind: FieldKind, description: &str, required: bool| FieldSpec {
            name: name.to_owned(),
            kind,
            description: description.to_owned(),
            required,
            entity: None,
            question: None,
            rephrase: None,
            topic: Vec::new(),
        };
        let mut schema = Self {
            fields: vec![
                field(
                    "caller_name",
                    FieldKind::Text,
                    "Full name of the caller",
                    true,
                ),
                field(
                    "policy_number",
                    FieldKind::Text,
                    "Insurance policy number",
                    true,
                ),
                field(
                    "incident_date",
                    FieldKind::Date,
                    "When the incident happened",
                    true,
                ),
                field(
                    "incident_location",
                    FieldKind::Text,
                    "Where it happened",
                    true,
                ),
                field(
                    "incident_description",
                    FieldKind::Text,
                    "What happened, in the caller's words",
                    true,
                ),
                field(
                    "injuries",
                    FieldKind::Bool,
                    "Whether anyone was injured",
                    true,
                ),
                field(
                    "vehicle_or_property",
                    FieldKind::Text,
                    "The vehicle or property damaged",
                    false,
                ),
                field(
                    "callback_phone",
                    FieldKind::Phone,
                    "Number to call the caller back on",
                    true,
                ),
                field("email", FieldKind::Email, "Caller's e-mail address", false),
            ],
        };
        let entities = [
            (0, EntityKind::PersonName),
            (1, EntityKind::PolicyNumber),
            (3, EntityKind::Place),
            (4, EntityKind::Description),
            (6, EntityKind::Item),
        ];
        for (index, kind) in entities {
            schema.fields[index].entity = Some(kind);
        }
        schema.fields[5].topic = [
            "hurt",
            "injur",
            "wounded",
            "bleed",
            "hospital",
            "ambulance",
            "whiplash",
            "concuss",
            "bruis",
        ]
        .map(String::from)
        .to_vec();
        let questions = [
            "May I have your full name, please?",
            "What is your policy number?",
            "When did it happen?",
            "Where did it happen?",
            "Could you tell me briefly what happened?",
            "Was anyone injured?",
            "Which vehicle or property was damaged?",
            "What is the best number to call you back on?",
            "And your e-mail address, if you have one?",
        ];
        for (field, question) in schema.fields.iter_mut().zip(questions) {
            field.question = Some(question.to_owned());
        }
        let rephrases = [
            "Sorry, I didn't catch your name. Could you tell me your first and last name?",
            "Sorry, I didn't get the policy number. It's on your insurance card, letters then \
             digits, like A B 1 2 3 4 5. You can say the letters and type the digits on your keypad.",
            "Sorry, when did it happen? For example today, yesterday, or a date like November 20th.",
            "Sorry, where exactly did it happen? A street, an address or a place name is fine.",
            "Could you tell me a little more about what happened?",
            "Sorry, was anyone hurt, yes or no?",
            "Which car or which part of your property was damaged? For example, my Honda Civic, or \
             the kitchen.",
            "Sorry, which number should we call you back on? Please say it digit by digit, or type \
             it on your keypad and press hash.",
            "Could you spell your e-mail address? For example, ana dot lopez at example dot com.",
        ];
        for (field, rephrase) in schema.fields.iter_mut().zip(rephrases) {
            field.rephrase = Some(rephrase.to_owned());
        }
        schema
    }
}
