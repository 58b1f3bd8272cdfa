//! TwiML: the XML answers that tell Twilio what to do with a call.

use std::fmt::Write;

/// The custom parameter of `<Stream>` that carries our call id to the Media Streams socket.
pub const CALL_ID_PARAMETER: &str = "call_id";

/// Escapes text for an XML attribute or element.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters are not allowed in XML 1.0; a caller id never holds one.
            c if c.is_control() && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

fn response(body: &str) -> String {
    format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response>{body}</Response>")
}

/// Connects the call to a bidirectional Media Stream at `stream_url` (`wss://…/twilio/media`), with
/// these `<Parameter>`s (they come back in the stream's `start` message).
pub fn connect_stream(stream_url: &str, parameters: &[(&str, &str)]) -> String {
    let mut stream = format!("<Connect><Stream url=\"{}\">", escape(stream_url));
    for (name, value) in parameters {
        // Writing to a String cannot fail.
        let _ = write!(
            stream,
            "<Parameter name=\"{}\" value=\"{}\"/>",
            escape(name),
            escape(value)
        );
    }
    stream.push_str("</Stream></Connect>");
    response(&stream)
}

/// Hands the call to a human at `number` (a phone number or SIP URI), showing `caller_id` if given.
pub fn dial(number: &str, caller_id: Option<&str>) -> String {
    let caller_id = caller_id
        .map(|id| format!(" callerId=\"{}\"", escape(id)))
        .unwrap_or_default();
    let target = if number.starts_with("sip:") {
        format!("<Sip>{}</Sip>", escape(number))
    } else {
        format!("<Number>{}</Number>", escape(number))
    };
    response(&format!("<Dial{caller_id}>{target}</Dial>"))
}

/// Says a short message in Twilio's own voice and hangs up: the answer when no agent can take the call
/// (the node is full or has no models loaded), so the caller hears why instead of silence.
pub fn say_and_hang_up(message: &str) -> String {
    response(&format!("<Say>{}</Say><Hangup/>", escape(message)))
}

/// Ends the call.
pub fn hang_up() -> String {
    response("<Hangup/>")
}

/// Reverses [`escape`] for the five entities it writes.
fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// The value of attribute `name` in `attributes` (the text after a tag's name: `url="…" a="…"`),
/// double-quoted as we write them. The attributes are read in order, so text inside one value (a
/// parameter named ` value=`) is never taken for another attribute.
fn attribute(attributes: &str, name: &str) -> Option<String> {
    let mut rest = attributes;
    loop {
        rest = rest.trim_start();
        let (key, after) = rest.split_once('=')?;
        let after = after.strip_prefix('"')?;
        let end = after.find('"')?;
        if key == name {
            return Some(unescape(&after[..end]));
        }
        rest = &after[end + 1..];
    }
}

/// A `<Connect><Stream>` answer read back: the socket Twilio would open and the parameters it would send
/// in `start`. This is what a Twilio stand-in (the `switchboard call --transport twilio` caller) does with
/// our answer; it reads the TwiML we write, not TwiML in general.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamTarget {
    /// The `wss://…/twilio/media` address.
    pub url: String,
    /// The `<Parameter>`s, in order.
    pub parameters: Vec<(String, String)>,
}

/// Reads the stream of a [`connect_stream`] answer; `None` when the TwiML connects no stream.
pub fn stream_target(twiml: &str) -> Option<StreamTarget> {
    const STREAM: &str = "<Stream ";
    let open = twiml.find(STREAM)?;
    let body = &twiml[open..];
    let first_tag_end = body.find('>')?;
    let url = attribute(&body[STREAM.len()..first_tag_end], "url")?;
    let close = body.find("</Stream>").unwrap_or(body.len());
    let parameters = body[..close]
        .split("<Parameter ")
        .skip(1)
        .filter_map(|tag| Some((attribute(tag, "name")?, attribute(tag, "value")?)))
        .collect();
    Some(StreamTarget { url, parameters })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_answer_carries_the_url_and_the_call_id() {
        let twiml = connect_stream(
            "wss://agent.example.com/twilio/media",
            &[(CALL_ID_PARAMETER, "0193-abc")],
        );
        assert_eq!(
            twiml,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Connect>\
             <Stream url=\"wss://agent.example.com/twilio/media\">\
             <Parameter name=\"call_id\" value=\"0193-abc\"/></Stream></Connect></Response>"
        );
    }

    #[test]
    fn a_stream_answer_reads_back() {
        let twiml = connect_stream(
            "wss://agent.example.com/twilio/media?a=1&b=\"2\"",
            &[(CALL_ID_PARAMETER, "0193-abc"), ("from", "+1 <415>")],
        );
        assert_eq!(
            stream_target(&twiml),
            Some(StreamTarget {
                url: "wss://agent.example.com/twilio/media?a=1&b=\"2\"".into(),
                parameters: vec![
                    ("call_id".into(), "0193-abc".into()),
                    ("from".into(), "+1 <415>".into())
                ],
            })
        );
        assert_eq!(stream_target(&say_and_hang_up("busy")), None);
        assert_eq!(stream_target("<Stream url=\"unterminated"), None);
    }

    #[test]
    fn a_parameter_named_like_an_attribute_reads_back_as_itself() {
        // Found by the twiml_stream_target fuzz target: a name holding ` value=` was read as the value.
        let twiml = connect_stream(
            "wss://a/twilio/media",
            &[(" value=", "v"), ("url=", " name=")],
        );
        assert_eq!(
            stream_target(&twiml).unwrap().parameters,
            vec![
                (" value=".into(), "v".into()),
                ("url=".into(), " name=".into())
            ]
        );
    }

    #[test]
    fn values_are_escaped() {
        let twiml = say_and_hang_up("Sorry <all> \"agents\" & 'lines' are busy\u{7}");
        assert!(twiml.contains(
            "<Say>Sorry &lt;all&gt; &quot;agents&quot; &amp; &apos;lines&apos; are busy</Say>"
        ));
    }

    #[test]
    fn a_transfer_dials_a_number_or_a_sip_address() {
        assert!(
            dial("+14155550100", Some("+18005551212"))
                .contains("<Dial callerId=\"+18005551212\"><Number>+14155550100</Number></Dial>")
        );
        assert!(
            dial("sip:desk@pbx.example.com", None)
                .contains("<Dial><Sip>sip:desk@pbx.example.com</Sip></Dial>")
        );
        assert!(hang_up().ends_with("<Response><Hangup/></Response>"));
    }
}
