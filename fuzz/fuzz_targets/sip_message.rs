//! Any datagram as a SIP message, read the way the user agent's transport reads one (ezk's line parser,
//! the request or status line, each header line), then every header our INVITE and REGISTER handling
//! reads decoded as its type, the caller and callee taken from From and To, and the body offered to our
//! SDP negotiation: refused or read, never a panic.
#![no_main]

use bytes::Bytes;
use ezk_sip_types::header::typed::{
    AuthChallenge, CSeq, CallID, Contact, ContentLength, Expires, FromTo, MinExpires, Via,
};
use ezk_sip_types::msg::{Line, MessageLine, PullParser};
use ezk_sip_types::parse::Parse;
use ezk_sip_types::uri::SipUriUserPart;
use ezk_sip_types::{Headers, Name};
use libfuzzer_sys::fuzz_target;
use switchboard_telephony::sip::sdp;

fuzz_target!(|data: &[u8]| {
    let buffer = Bytes::copy_from_slice(data);
    let mut parser = PullParser::new(&buffer, 0);
    let mut first = None;
    let mut headers = Headers::new();
    for item in &mut parser {
        let Ok(line) = item else { return };
        let Ok(line) = std::str::from_utf8(line) else {
            return;
        };
        if first.is_none() {
            match MessageLine::parse(&buffer)(line) {
                Ok((_, parsed)) => first = Some(parsed),
                Err(_) => return,
            }
        } else {
            match Line::parse(&buffer, line) {
                Ok((_, parsed)) => headers.insert(parsed.name, parsed.value),
                Err(_) => return,
            }
        }
    }
    if first.is_none() {
        return;
    }
    let head_end = parser.head_end().min(buffer.len());
    for name in [Name::FROM, Name::TO] {
        if let Ok(party) = headers.get::<FromTo>(name)
            && let SipUriUserPart::User(user) = &party.uri.uri.user_part
        {
            let _ = user.to_string();
        }
    }
    let _ = headers.get_named::<CallID>();
    let _ = headers.get_named::<CSeq>();
    let _ = headers.get_named::<Vec<Via>>();
    let _ = headers.get::<Vec<Contact>>(Name::CONTACT);
    let _ = headers.get_named::<Expires>();
    let _ = headers.get_named::<MinExpires>();
    // A registrar's or PBX's digest challenge, as the authenticator reads it.
    let _ = headers.get::<Vec<AuthChallenge>>(Name::WWW_AUTHENTICATE);
    let _ = headers.get::<Vec<AuthChallenge>>(Name::PROXY_AUTHENTICATE);
    let body = match headers.get_named::<ContentLength>() {
        Ok(length) if head_end + length.0 <= buffer.len() => &buffer[head_end..head_end + length.0],
        Ok(_) => return,
        Err(_) => &buffer[head_end..],
    };
    if let Ok(text) = std::str::from_utf8(body)
        && let Ok(offer) = sdp::parse(text)
    {
        let _ = sdp::negotiate(&offer);
    }
});
