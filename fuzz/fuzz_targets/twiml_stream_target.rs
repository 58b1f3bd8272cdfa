//! The `<Connect><Stream>` TwiML we answer with, for any URL and parameters, reads back to the same URL
//! and parameters (less the control characters XML cannot carry): escaping never lets a value break out
//! of its attribute.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_telephony::twilio::twiml;

fuzz_target!(|input: (String, Vec<(String, String)>)| {
    let (url, parameters) = input;
    let pairs: Vec<(&str, &str)> = parameters
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    let answer = twiml::connect_stream(&url, &pairs);
    let target = twiml::stream_target(&answer).expect("our own answer connects a stream");
    assert_eq!(target.url, xml_text(&url));
    let expected: Vec<(String, String)> = parameters
        .iter()
        .map(|(name, value)| (xml_text(name), xml_text(value)))
        .collect();
    assert_eq!(target.parameters, expected);
});

/// The text as XML 1.0 can hold it: control characters other than tab and line ends are dropped.
fn xml_text(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r'))
        .collect()
}
