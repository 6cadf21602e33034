//! The wire form of a tally on a ballot's updates channel.
//!
//! Version 1 is one line of ASCII: the version tag, the sequence number,
//! then one `option=count` pair per option, separated by single spaces:
//!
//! ```text
//! v1 42 1=17 2=20 5=5
//! ```
//!
//! Version 2 adds, after a `|`, each distinct choice (option ids separated
//! by commas, in rank order for a ranking) with its voters; version 1 is
//! still written for a tally without choices:
//!
//! ```text
//! v2 42 1=17 2=20 | 1,2=12 2=20 1=5
//! ```
//!
//! It carries option ids and counts only, never ballot text (the ballot id
//! is the channel's). A reader skips a message whose version it does not
//! know, so a later version can be rolled out one instance at a time.
//! Decoding rejects anything else (bad numbers, repeated options, extra
//! spaces) with an error, and never panics.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use oponn_core::domain::{OptionId, Tally};

/// The tag of a tally without choices.
const VERSION_1: &str = "v1";

/// The tag of a tally with choices.
const VERSION_2: &str = "v2";

/// The token between option counts and choices, in version 2.
const CHOICES: &str = "|";

/// Why a message is not a tally.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DecodeError {
    /// The payload is not text.
    #[error("the payload is not UTF-8")]
    NotText,
    /// The payload does not start with a version this reader knows.
    #[error("unknown tally encoding version")]
    UnknownVersion,
    /// The sequence number is missing or not a number.
    #[error("missing or invalid sequence number")]
    BadSequence,
    /// A pair is not `option=count` with two numbers.
    #[error("malformed option count")]
    BadPair,
    /// An option appears twice.
    #[error("an option appears twice")]
    RepeatedOption,
    /// A choice is not `ids=count` with ids separated by commas.
    #[error("malformed choice")]
    BadChoice,
    /// A choice appears twice.
    #[error("a choice appears twice")]
    RepeatedChoice,
}

/// Encodes `tally`: version 2 when it has choices, else version 1.
pub(crate) fn encode(tally: &Tally) -> String {
    let mut choices = tally.choices().peekable();
    let version = if choices.peek().is_some() {
        VERSION_2
    } else {
        VERSION_1
    };
    let mut line = format!("{version} {}", tally.seq());
    for (option, count) in tally.iter() {
        // Writing to a String cannot fail.
        let _ = write!(line, " {}={count}", option.get());
    }
    if version == VERSION_2 {
        line.push(' ');
        line.push_str(CHOICES);
        for (choice, voters) in choices {
            line.push(' ');
            for (at, option) in choice.iter().enumerate() {
                if at > 0 {
                    line.push(',');
                }
                let _ = write!(line, "{}", option.get());
            }
            let _ = write!(line, "={voters}");
        }
    }
    line
}

/// Decodes a payload written by [`encode`].
///
/// # Errors
/// A [`DecodeError`] for anything that is not a version 1 tally.
pub(crate) fn decode(payload: &[u8]) -> Result<Tally, DecodeError> {
    let text = std::str::from_utf8(payload).map_err(|_| DecodeError::NotText)?;
    let mut fields = text.split(' ');
    let with_choices = match fields.next() {
        Some(VERSION_1) => false,
        Some(VERSION_2) => true,
        _ => return Err(DecodeError::UnknownVersion),
    };
    let seq = fields
        .next()
        .and_then(number::<u64>)
        .ok_or(DecodeError::BadSequence)?;
    let mut counts = BTreeMap::new();
    let mut choices = BTreeMap::new();
    let mut reading_choices = false;
    for field in fields {
        if field == CHOICES && with_choices && !reading_choices {
            reading_choices = true;
            continue;
        }
        if reading_choices {
            let (choice, voters) = field.split_once('=').ok_or(DecodeError::BadChoice)?;
            let choice = choice
                .split(',')
                .map(|id| number::<u32>(id).map(OptionId::new))
                .collect::<Option<Vec<_>>>()
                .ok_or(DecodeError::BadChoice)?;
            let voters = number::<u64>(voters).ok_or(DecodeError::BadChoice)?;
            if choices.insert(choice, voters).is_some() {
                return Err(DecodeError::RepeatedChoice);
            }
            continue;
        }
        let (option, count) = field.split_once('=').ok_or(DecodeError::BadPair)?;
        let option = number::<u32>(option).ok_or(DecodeError::BadPair)?;
        let count = number::<u64>(count).ok_or(DecodeError::BadPair)?;
        if counts.insert(OptionId::new(option), count).is_some() {
            return Err(DecodeError::RepeatedOption);
        }
    }
    if with_choices && !reading_choices {
        return Err(DecodeError::BadChoice);
    }
    Ok(Tally::new(seq, counts).with_choices(choices))
}

/// Parses plain decimal digits only: no sign, no spaces, no empty string
/// (which `str::parse` alone would let through as `+5`).
fn number<T: std::str::FromStr>(text: &str) -> Option<T> {
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(seq: u64, counts: &[(u32, u64)]) -> Tally {
        Tally::new(
            seq,
            counts
                .iter()
                .map(|&(option, count)| (OptionId::new(option), count)),
        )
    }

    #[test]
    fn encodes_the_documented_form() {
        assert_eq!(encode(&tally(42, &[(2, 20), (1, 17)])), "v1 42 1=17 2=20");
        assert_eq!(encode(&tally(0, &[])), "v1 0");
    }

    #[test]
    fn a_tally_with_choices_is_version_2() {
        let ranked = tally(42, &[(1, 17), (2, 20)]).with_choices([
            (vec![OptionId::new(1), OptionId::new(2)], 12),
            (vec![OptionId::new(2)], 20),
            (vec![OptionId::new(1)], 5),
        ]);
        assert_eq!(encode(&ranked), "v2 42 1=17 2=20 | 1=5 1,2=12 2=20");
        assert_eq!(decode(encode(&ranked).as_bytes()), Ok(ranked));
    }

    #[test]
    fn round_trips() {
        for sample in [
            tally(0, &[]),
            tally(1, &[(1, 1)]),
            tally(u64::MAX, &[(u32::MAX, u64::MAX), (0, 0), (7, 3)]),
        ] {
            assert_eq!(decode(encode(&sample).as_bytes()), Ok(sample));
        }
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        let cases: &[(&[u8], DecodeError)] = &[
            (b"", DecodeError::UnknownVersion),
            (b"\xff\xfe", DecodeError::NotText),
            (b"v3 1 1=1", DecodeError::UnknownVersion),
            (b"v2 1 1=1", DecodeError::BadChoice),
            (b"v2 1 1=1 | 1,=1", DecodeError::BadChoice),
            (b"v2 1 1=1 | 1,2", DecodeError::BadChoice),
            (b"v2 1 1=1 | 1,x=2", DecodeError::BadChoice),
            (b"v2 1 1=1 | 1=1 1=2", DecodeError::RepeatedChoice),
            (b"v2 1 1=1 | |", DecodeError::BadChoice),
            (b"v1 1 1=1 | 1=1", DecodeError::BadPair),
            (b"V1 1", DecodeError::UnknownVersion),
            (b"v1", DecodeError::BadSequence),
            (b"v1 ", DecodeError::BadSequence),
            (b"v1 -1", DecodeError::BadSequence),
            (b"v1 +1", DecodeError::BadSequence),
            (b"v1 18446744073709551616", DecodeError::BadSequence),
            (b"v1 1 1", DecodeError::BadPair),
            (b"v1 1 1=", DecodeError::BadPair),
            (b"v1 1 =1", DecodeError::BadPair),
            (b"v1 1 1=x", DecodeError::BadPair),
            (b"v1 1 1=1=1", DecodeError::BadPair),
            (b"v1 1 4294967296=1", DecodeError::BadPair),
            (b"v1 1 1=1 ", DecodeError::BadPair),
            (b"v1 1  1=1", DecodeError::BadPair),
            (b"v1 1 1=1 1=2", DecodeError::RepeatedOption),
            (b"v1 1 measure=secret", DecodeError::BadPair),
        ];
        for (payload, expected) in cases {
            assert_eq!(
                decode(payload).as_ref(),
                Err(expected),
                "{}",
                String::from_utf8_lossy(payload)
            );
        }
    }
}
