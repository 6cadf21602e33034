//! Measures, option labels and write-ins: the user-written text of a ballot.
//!
//! Text is shown to every voter, so it must look like what it is. Each
//! constructor refuses characters that hide or disguise text (see
//! [`check_characters`]), and labels are compared by a key under which
//! look-alikes are equal (see [`comparison_key`]).

use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

use super::validation::{Field, FieldError, messages};

/// Shortest measure, in characters after trimming.
pub const MEASURE_MIN_CHARS: usize = 3;
/// Longest measure, in characters after trimming.
pub const MEASURE_MAX_CHARS: usize = 255;
/// Longest option label or write-in, in characters.
pub const LABEL_MAX_CHARS: usize = 64;
/// Most options a ballot may be created with.
pub const MAX_OPTIONS: usize = 64;
/// Most combining marks (accents, vowel signs) one character may carry.
///
/// Real scripts stack up to four (Hebrew points and cantillation, Tibetan
/// stacks); "Zalgo" text stacks dozens so that it spills over the lines
/// around it, the options and measure of the ballot included.
pub const MAX_MARKS_PER_CHARACTER: usize = 6;
/// Most tag characters in one emoji tag sequence (a subdivision flag such
/// as Scotland's is the black flag, five tags and a cancel tag).
pub const MAX_EMOJI_TAGS: usize = 8;

/// The question a ballot puts to its voters: 3 to 255 characters after
/// trimming, each run of whitespace (line breaks and tabs included) made
/// one space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Measure(String);

impl Measure {
    /// Collapses whitespace, checks the characters and the length.
    ///
    /// Line breaks and tabs are whitespace, not errors: a pasted question
    /// keeps its words, shown on one line as HTML would show it anyway.
    ///
    /// # Errors
    /// A [`Field::Measure`] error for a control, invisible or disguising
    /// character (see [`check_characters`]), or when it is shorter than 3
    /// or longer than 255 characters.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let collapsed = collapse_whitespace(raw);
        // Length first, so an oversized measure costs no character checks.
        match collapsed.chars().count() {
            n if n < MEASURE_MIN_CHARS => {
                Err(FieldError::new(Field::Measure, messages::MEASURE_TOO_SHORT))
            }
            n if n > MEASURE_MAX_CHARS => {
                Err(FieldError::new(Field::Measure, messages::MEASURE_TOO_LONG))
            }
            _ => {
                check_characters(&collapsed).map_err(|fault| fault.error(Field::Measure))?;
                Ok(Self(collapsed))
            }
        }
    }

    /// The measure's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The text of one option: trimmed, 1 to 64 characters, on one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionLabel(String);

impl OptionLabel {
    /// Trims `raw`, checks its characters and its length.
    ///
    /// Unlike a measure, a label is never rewritten inside: a line break,
    /// tab or other control character in it is refused.
    ///
    /// # Errors
    /// A [`Field::Options`] error for a control, invisible or disguising
    /// character (see [`check_characters`]), or when it is empty or longer
    /// than 64 characters.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let trimmed = raw.trim();
        let chars = trimmed.chars().count();
        if chars == 0 || chars > LABEL_MAX_CHARS {
            return Err(FieldError::new(Field::Options, messages::OPTION_LENGTH));
        }
        check_characters(trimmed).map_err(|fault| fault.error(Field::Options))?;
        Ok(Self(trimmed.to_owned()))
    }

    /// Wraps text that was validated when it was first stored.
    pub(crate) fn trusted(text: String) -> Self {
        Self(text)
    }

    /// The label's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form two labels are compared in; see [`comparison_key`].
    pub fn comparison_key(&self) -> String {
        comparison_key(&self.0)
    }
}

/// A voter's own option: trimmed, inner whitespace collapsed, 1 to 64 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteIn(String);

impl WriteIn {
    /// Trims `raw`, collapses runs of whitespace (tabs and line breaks
    /// included) to one space, and checks the characters and the length.
    ///
    /// # Errors
    /// A [`Field::WriteIn`] error when nothing is left, for a control,
    /// invisible or disguising character (see [`check_characters`]), or
    /// when it is longer than 64 characters.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let collapsed = collapse_whitespace(raw);
        match collapsed.chars().count() {
            0 => Err(FieldError::new(Field::WriteIn, messages::WRITE_IN_REQUIRED)),
            n if n > LABEL_MAX_CHARS => {
                Err(FieldError::new(Field::WriteIn, messages::WRITE_IN_TOO_LONG))
            }
            _ => {
                check_characters(&collapsed).map_err(|fault| fault.error(Field::WriteIn))?;
                Ok(Self(collapsed))
            }
        }
    }

    /// The write-in's text as it will be shown.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form two labels are compared in; see [`comparison_key`].
    pub fn comparison_key(&self) -> String {
        comparison_key(&self.0)
    }

    /// The write-in as an option label, for when it creates a new option.
    pub fn into_label(self) -> OptionLabel {
        OptionLabel(self.0)
    }
}

/// Splits the create form's option text into options: one per line when
/// the text has line breaks (so `Yes, definitely` stays one option), else
/// on commas (a one-line list such as `pizza, ramen, tacos`).
///
/// Each piece is trimmed and blank pieces are dropped, so a trailing comma or
/// an empty line is not an error.
pub fn split_option_text(raw: &str) -> Vec<String> {
    let pieces: Vec<&str> = if raw.contains(['\n', '\r']) {
        raw.split(['\n', '\r']).collect()
    } else {
        raw.split(',').collect()
    };
    pieces
        .into_iter()
        .map(str::trim)
        .filter(|piece| !piece.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The form in which two labels are equal when a voter would call them equal.
///
/// Unicode compatibility normalization (NFKC), so that full-width or
/// composed forms meet their plain twins; case folded; then the confusable
/// skeleton of Unicode TS #39 (which also drops default-ignorable
/// characters), so that "pizzа" with a Cyrillic "а" meets "pizza"; and
/// whitespace collapsed. A skeleton may bring back capitals ("0" becomes
/// "O"), so the steps repeat until the key stops changing (in at most
/// four rounds), which makes the key idempotent.
///
/// Predefined options must be unique under this key, and a write-in counts
/// toward the option whose key it shares. The key is never shown: it only
/// feeds the keyed hash a label is matched by.
pub fn comparison_key(text: &str) -> String {
    let mut key = key_round(text);
    for _ in 1..KEY_ROUNDS {
        let next = key_round(&key);
        if next == key {
            break;
        }
        key = next;
    }
    key
}

/// Rounds of [`comparison_key`]'s steps at most; two suffice for every
/// input found so far, the rest is headroom that keeps the work bounded.
const KEY_ROUNDS: usize = 4;

fn key_round(text: &str) -> String {
    let normalized: String = text.nfkc().collect();
    let folded = normalized.to_lowercase();
    let skeleton: String = unicode_security::skeleton(&folded).collect();
    collapse_whitespace(&skeleton)
}

fn collapse_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Why a text was refused by [`check_characters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TextFault {
    /// A control, invisible, bidi or otherwise misplaced character.
    Hidden,
    /// More than [`MAX_MARKS_PER_CHARACTER`] marks on one character.
    StackedMarks,
}

impl TextFault {
    fn error(self, field: Field) -> FieldError {
        let message = match (self, field) {
            (TextFault::StackedMarks, _) => messages::TOO_MANY_MARKS,
            (TextFault::Hidden, Field::Measure) => messages::MEASURE_HIDDEN_CHARACTERS,
            (TextFault::Hidden, Field::WriteIn) => messages::WRITE_IN_HIDDEN_CHARACTERS,
            (TextFault::Hidden, _) => messages::OPTION_HIDDEN_CHARACTERS,
        };
        FieldError::new(field, message)
    }
}

/// What one character is, for [`check_characters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Something a reader sees: a letter, digit, symbol, emoji.
    Visible,
    /// A combining mark, drawn on the character before it.
    Mark,
    /// A space between words.
    Space,
    /// ZERO WIDTH JOINER or NON-JOINER: shapes its neighbours.
    Joiner,
    /// A variation selector: picks a glyph for the character before it.
    Selector,
    /// A tag character of an emoji tag sequence, or its cancel tag.
    Tag,
    /// Anything refused wherever it stands.
    Refused,
}

const ZWNJ: char = '\u{200C}';
const ZWJ: char = '\u{200D}';
const BLACK_FLAG: char = '\u{1F3F4}';
const CANCEL_TAG: char = '\u{E007F}';

fn kind(c: char) -> Kind {
    match c {
        ZWNJ | ZWJ => Kind::Joiner,
        '\u{FE00}'..='\u{FE0F}' | '\u{E0100}'..='\u{E01EF}' => Kind::Selector,
        '\u{E0020}'..=CANCEL_TAG => Kind::Tag,
        // Visually blank although not default-ignorable: BRAILLE PATTERN
        // BLANK and the interlinear annotation controls that hide text.
        '\u{2800}' | '\u{FFF9}'..='\u{FFFB}' => Kind::Refused,
        c if is_default_ignorable(c) || is_noncharacter(c) => Kind::Refused,
        c => match c.general_category() {
            // Line and paragraph separators end a line like LF does.
            GeneralCategory::Control
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator => Kind::Refused,
            // The format characters left once the default-ignorable ones
            // are out are visible (Arabic number signs, hieroglyph
            // layout controls) and stay.
            GeneralCategory::SpaceSeparator => Kind::Space,
            GeneralCategory::NonspacingMark
            | GeneralCategory::SpacingMark
            | GeneralCategory::EnclosingMark => Kind::Mark,
            _ => Kind::Visible,
        },
    }
}

/// Unicode's `Default_Ignorable_Code_Point` (DerivedCoreProperties.txt):
/// characters a renderer draws as nothing at all, bidi controls included.
fn is_default_ignorable(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'..='\u{1160}'
            | '\u{17B4}'..='\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF0}'..='\u{FFF8}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E0FFF}'
    )
}

/// The 66 code points Unicode reserves never to assign.
fn is_noncharacter(c: char) -> bool {
    matches!(c, '\u{FDD0}'..='\u{FDEF}') || (u32::from(c) & 0xFFFE) == 0xFFFE
}

/// Checks that `text` shows what it says: every character is one a reader
/// sees, or one that only shapes the visible characters beside it.
///
/// Refused anywhere: control characters (C0, DEL, C1: NUL, ESC and so ANSI
/// escapes, CR, LF, TAB), line and paragraph separators, bidi embeddings,
/// overrides, isolates and marks (U+202A–U+202E, U+2066–U+2069, U+200E,
/// U+200F, U+061C), and every other default-ignorable character (U+200B,
/// U+2060, U+FEFF, U+00AD, U+180E, Hangul fillers, ...), noncharacters,
/// U+2800 and the interlinear annotation controls.
///
/// Allowed only where they do their legitimate work:
/// - ZWJ and ZWNJ (U+200D, U+200C) between a visible character (or its
///   mark or variation selector) and a visible character or mark: emoji
///   sequences, Persian and Indic shaping;
/// - a variation selector directly after a visible character or mark
///   (emoji and text presentation, ideographic variants), one at a time;
/// - tag characters only as an emoji tag sequence: U+1F3F4, 1 to
///   [`MAX_EMOJI_TAGS`] tags, then the cancel tag U+E007F;
/// - combining marks after a visible character, at most
///   [`MAX_MARKS_PER_CHARACTER`] in a row.
///
/// So a text that passes has at least one visible character when it has
/// any character, and whitespace rules are the caller's (measures and
/// write-ins collapse whitespace first, labels refuse line breaks here).
///
/// # Errors
/// [`TextFault::StackedMarks`] for too many marks on one character,
/// [`TextFault::Hidden`] for any other refused or misplaced character.
pub(crate) fn check_characters(text: &str) -> Result<(), TextFault> {
    let chars: Vec<char> = text.chars().collect();
    let mut previous: Option<Kind> = None;
    let mut marks = 0usize;
    let mut tags = 0usize;
    for (index, &c) in chars.iter().enumerate() {
        let here = kind(c);
        let after_visible = matches!(previous, Some(Kind::Visible | Kind::Mark | Kind::Selector));
        match here {
            Kind::Visible | Kind::Space => marks = 0,
            Kind::Refused => return Err(TextFault::Hidden),
            Kind::Mark => {
                if !after_visible {
                    return Err(TextFault::Hidden);
                }
                marks += 1;
                if marks > MAX_MARKS_PER_CHARACTER {
                    return Err(TextFault::StackedMarks);
                }
            }
            Kind::Joiner => {
                let next = chars.get(index + 1).map(|&next| kind(next));
                if !after_visible || !matches!(next, Some(Kind::Visible | Kind::Mark)) {
                    return Err(TextFault::Hidden);
                }
                marks = 0;
            }
            Kind::Selector => {
                if !matches!(previous, Some(Kind::Visible | Kind::Mark)) {
                    return Err(TextFault::Hidden);
                }
            }
            Kind::Tag => {
                let starts = tags == 0 && index > 0 && chars[index - 1] == BLACK_FLAG;
                if !(starts || tags > 0) {
                    return Err(TextFault::Hidden);
                }
                if c == CANCEL_TAG {
                    if tags == 0 {
                        return Err(TextFault::Hidden);
                    }
                    tags = 0;
                    // The whole sequence is one emoji, as visible as its flag.
                    previous = Some(Kind::Visible);
                    continue;
                }
                tags += 1;
                if tags > MAX_EMOJI_TAGS {
                    return Err(TextFault::Hidden);
                }
            }
        }
        previous = Some(here);
    }
    // A tag sequence must end with its cancel tag.
    if tags > 0 {
        return Err(TextFault::Hidden);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn text_of_len(len: usize) -> String {
        "é".repeat(len)
    }

    #[test]
    fn measure_boundaries_count_characters_not_bytes() {
        assert!(Measure::parse(&text_of_len(2)).is_err());
        assert!(Measure::parse(&text_of_len(3)).is_ok());
        assert!(Measure::parse(&text_of_len(255)).is_ok());
        assert_eq!(
            Measure::parse(&text_of_len(256)).unwrap_err().message(),
            messages::MEASURE_TOO_LONG
        );
        assert_eq!(
            Measure::parse("  ab  ").unwrap_err().message(),
            messages::MEASURE_TOO_SHORT
        );
    }

    #[test]
    fn write_in_collapses_inner_whitespace() {
        let write_in = WriteIn::parse("  deep \t  dish\n pizza ").unwrap();
        assert_eq!(write_in.as_str(), "deep dish pizza");
        assert_eq!(
            WriteIn::parse(" \t ").unwrap_err().message(),
            messages::WRITE_IN_REQUIRED
        );
    }

    #[test]
    fn comparison_key_ignores_case_width_and_composition() {
        assert_eq!(comparison_key("Pizza"), comparison_key("pIZZA"));
        // Full-width letters normalize to ASCII under NFKC.
        assert_eq!(comparison_key("Ｐｉｚｚａ"), comparison_key("pizza"));
        // "é" precomposed and as "e" + combining acute accent.
        assert_eq!(comparison_key("caf\u{e9}"), comparison_key("cafe\u{301}"));
        assert_ne!(comparison_key("pizza"), comparison_key("pizzas"));
    }

    /// Characters that hide or disguise text, refused wherever they stand.
    const HIDDEN: &[char] = &[
        '\u{0}',
        '\u{7}',
        '\u{1b}',
        '\r',
        '\n',
        '\t',
        '\u{b}',
        '\u{c}',
        '\u{7f}',
        '\u{85}',
        '\u{9b}',
        '\u{ad}',
        '\u{34f}',
        '\u{61c}',
        '\u{115f}',
        '\u{1160}',
        '\u{17b4}',
        '\u{180e}',
        '\u{200b}',
        '\u{200e}',
        '\u{200f}',
        '\u{202a}',
        '\u{202b}',
        '\u{202c}',
        '\u{202d}',
        '\u{202e}',
        '\u{2028}',
        '\u{2029}',
        '\u{2060}',
        '\u{2061}',
        '\u{2064}',
        '\u{2066}',
        '\u{2067}',
        '\u{2068}',
        '\u{2069}',
        '\u{206f}',
        '\u{2800}',
        '\u{3164}',
        '\u{feff}',
        '\u{ffa0}',
        '\u{fff9}',
        '\u{fffb}',
        '\u{fdd0}',
        '\u{fffe}',
        '\u{1d173}',
        '\u{e0000}',
        '\u{e0001}',
        '\u{e0041}',
        '\u{e007f}',
        '\u{e01f0}',
        '\u{10ffff}',
    ];

    fn label_error(raw: &str) -> Option<&'static str> {
        OptionLabel::parse(raw).err().map(|error| error.rule())
    }

    #[test]
    fn hidden_characters_are_refused_in_every_field() {
        for &c in HIDDEN {
            for raw in [
                format!("Piz{c}za"),
                format!("{c}Pizza"),
                format!("Pizza{c}"),
            ] {
                // Whitespace at either end is trimmed, not refused.
                let inner = raw.starts_with("Piz") && raw.ends_with("za");
                if inner || !c.is_whitespace() {
                    assert_eq!(
                        label_error(&raw),
                        Some(messages::OPTION_HIDDEN_CHARACTERS),
                        "{raw:?}"
                    );
                }
                if !c.is_whitespace() {
                    assert_eq!(
                        WriteIn::parse(&raw).unwrap_err().message(),
                        messages::WRITE_IN_HIDDEN_CHARACTERS,
                        "{raw:?}"
                    );
                    assert_eq!(
                        Measure::parse(&format!("Which {raw}?"))
                            .unwrap_err()
                            .message(),
                        messages::MEASURE_HIDDEN_CHARACTERS,
                        "{raw:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_reported_spoofs_are_refused() {
        for raw in [
            "\u{200b}",
            "piz\u{200b}za",
            "\u{202e}azziP",
            "\u{1b}[31mPizza",
            "Pizza\u{0}",
            "\u{200d}",
            "\u{200c}",
            "\u{fe0f}",
            "\u{3164}",
            "\u{115f}\u{1160}",
        ] {
            assert!(OptionLabel::parse(raw).is_err(), "{raw:?}");
            assert!(WriteIn::parse(raw).is_err(), "{raw:?}");
        }
        // A label is refused a line break; a write-in's becomes a space.
        assert_eq!(
            label_error("Ramen\revent: hijacked"),
            Some(messages::OPTION_HIDDEN_CHARACTERS)
        );
        assert_eq!(
            WriteIn::parse("Ramen\revent: hijacked").unwrap().as_str(),
            "Ramen event: hijacked"
        );
    }

    #[test]
    fn joiners_and_selectors_stand_only_between_visible_characters() {
        for raw in [
            "a\u{200d}",
            "\u{200d}a",
            "a \u{200d}b",
            "a\u{200d} b",
            "a\u{200d}\u{200d}b",
            "a\u{200c}\u{200b}b",
            "\u{fe0f}a",
            "a \u{fe0f}",
            "a\u{fe0f}\u{fe0f}",
            "a\u{200d}\u{fe0f}",
            "\u{301}a",
            "a \u{301}",
            // Tags outside an emoji tag sequence hide text.
            "Pizza\u{e0068}\u{e0069}\u{e007f}",
            "\u{1f3f4}\u{e0067}\u{e0062}",
            "\u{1f3f4}\u{e007f}",
            "\u{1f3f4}\u{e0061}\u{e0061}\u{e0061}\u{e0061}\u{e0061}\u{e0061}\u{e0061}\u{e0061}\u{e0061}\u{e007f}",
        ] {
            assert_eq!(
                label_error(raw),
                Some(messages::OPTION_HIDDEN_CHARACTERS),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn legitimate_scripts_and_emoji_are_accepted_as_written() {
        for raw in [
            "Ναι",
            "Όχι",
            "Да",
            "Нет",
            "Пицца",
            "是",
            "否",
            "寿司",
            "نعم",
            "لا",
            "שָׁלוֹם",
            "Tiếng Việt",
            "می\u{200c}خواهم",
            "क्\u{200d}ष",
            "ภาษาไทย",
            "བོད་ཡིག",
            "👩\u{200d}💻",
            "❤\u{fe0f}",
            "❤\u{fe0f}\u{200d}🔥",
            "1\u{fe0f}\u{20e3}",
            "👍🏽",
            "🇫🇷",
            "\u{1f3f4}\u{e0067}\u{e0062}\u{e0073}\u{e0063}\u{e0074}\u{e007f}",
            "葛\u{e0100}",
            "\u{600}١٢",
            "a\u{301}\u{302}\u{303}\u{304}\u{305}\u{306}",
            "Pizza \u{3000} Hut",
        ] {
            let label = OptionLabel::parse(raw).unwrap_or_else(|error| panic!("{raw:?}: {error}"));
            assert_eq!(label.as_str(), raw);
            assert!(!comparison_key(raw).is_empty(), "{raw:?}");
            assert_eq!(
                WriteIn::parse(raw).unwrap().as_str(),
                collapse_whitespace(raw)
            );
        }
    }

    #[test]
    fn a_character_carries_at_most_max_marks() {
        let marks = |n: usize| format!("Zalgo{}", "\u{301}".repeat(n));
        assert!(OptionLabel::parse(&marks(MAX_MARKS_PER_CHARACTER)).is_ok());
        assert_eq!(
            label_error(&marks(MAX_MARKS_PER_CHARACTER + 1)),
            Some(messages::TOO_MANY_MARKS)
        );
        assert!(messages::TOO_MANY_MARKS.contains(&MAX_MARKS_PER_CHARACTER.to_string()));
        // A variation selector between marks does not restart the count.
        let hidden_restart = format!(
            "a{}\u{fe0f}\u{301}",
            "\u{301}".repeat(MAX_MARKS_PER_CHARACTER)
        );
        assert_eq!(label_error(&hidden_restart), Some(messages::TOO_MANY_MARKS));
        assert_eq!(
            WriteIn::parse(&marks(40)).unwrap_err().message(),
            messages::TOO_MANY_MARKS
        );
    }

    #[test]
    fn a_measure_makes_line_breaks_and_tabs_spaces() {
        let measure = Measure::parse("  Lunch\r\non\tFriday?\u{2028}Vote\u{85}now ").unwrap();
        assert_eq!(measure.as_str(), "Lunch on Friday? Vote now");
        assert_eq!(
            WriteIn::parse("deep\r\ndish").unwrap().as_str(),
            "deep dish"
        );
        // A label is never rewritten inside: a line break is refused.
        assert_eq!(
            label_error("deep\r\ndish"),
            Some(messages::OPTION_HIDDEN_CHARACTERS)
        );
    }

    #[test]
    fn look_alikes_share_a_key() {
        let pizza = comparison_key("Pizza");
        for look_alike in [
            "pizz\u{430}", // Cyrillic а
            "P\u{456}zza", // Ukrainian і
            "\u{420}izza", // Cyrillic Р
            "Ｐｉｚｚａ",  // full width
            "𝐏𝐢𝐳𝐳𝐚",       // mathematical bold
            "PIZZA",
            "p i z z a",
        ] {
            if look_alike.contains(' ') {
                assert_ne!(comparison_key(look_alike), pizza, "{look_alike}");
            } else {
                assert_eq!(comparison_key(look_alike), pizza, "{look_alike}");
            }
        }
        assert_eq!(comparison_key("P0LL"), comparison_key("poll"));
    }

    #[test]
    fn distinct_words_in_other_scripts_keep_distinct_keys() {
        for (yes, no) in [
            ("Ναι", "Όχι"),
            ("Да", "Нет"),
            ("是", "否"),
            ("نعم", "لا"),
            ("はい", "いいえ"),
            ("כן", "לא"),
            ("Суши", "Пицца"),
            ("Σούσι", "Πίτσα"),
            ("寿司", "拉面"),
        ] {
            assert_ne!(comparison_key(yes), comparison_key(no), "{yes} / {no}");
        }
        // Case still folds within a script.
        assert_eq!(comparison_key("ΝΑΙ"), comparison_key("ναι"));
        assert_eq!(comparison_key("ДА"), comparison_key("да"));
    }

    #[test]
    fn option_text_splits_on_line_breaks_when_it_has_them_else_on_commas() {
        assert_eq!(
            split_option_text("Yes, definitely\r\nNo, never\n\n Maybe \n"),
            vec!["Yes, definitely", "No, never", "Maybe"]
        );
        assert_eq!(
            split_option_text("aye, nay,, abstain ,"),
            vec!["aye", "nay", "abstain"]
        );
        assert_eq!(split_option_text("one\rtwo"), vec!["one", "two"]);
        assert!(split_option_text(" \n \r\n ").is_empty());
        assert!(split_option_text(" , ,").is_empty());
    }

    proptest! {
        #[test]
        fn measure_accepts_exactly_3_to_255_chars(len in 0usize..300, pad in 0usize..4) {
            let raw = format!("{}{}{}", " ".repeat(pad), "x".repeat(len), " ".repeat(pad));
            let accepted = Measure::parse(&raw).is_ok();
            prop_assert_eq!(accepted, (MEASURE_MIN_CHARS..=MEASURE_MAX_CHARS).contains(&len));
        }

        #[test]
        fn option_label_accepts_exactly_1_to_64_chars(len in 0usize..100) {
            let accepted = OptionLabel::parse(&"ø".repeat(len)).is_ok();
            prop_assert_eq!(accepted, (1..=LABEL_MAX_CHARS).contains(&len));
        }

        #[test]
        fn write_in_accepts_exactly_1_to_64_chars_after_collapsing(
            words in proptest::collection::vec("[a-zA-Z]{1,8}", 0..12),
            gap in "[ \t\n]{1,3}",
        ) {
            let raw = format!("{gap}{}{gap}", words.join(&gap));
            let expected = words.join(" ");
            match WriteIn::parse(&raw) {
                Ok(write_in) => {
                    prop_assert_eq!(write_in.as_str(), expected.as_str());
                    prop_assert!((1..=LABEL_MAX_CHARS).contains(&expected.chars().count()));
                }
                Err(error) => {
                    let len = expected.chars().count();
                    prop_assert!(len == 0 || len > LABEL_MAX_CHARS);
                    prop_assert_eq!(error.field(), Field::WriteIn);
                }
            }
        }

        #[test]
        fn comparison_key_is_idempotent_and_case_blind(text in "[a-zA-Z0-9à-þ \t]{0,40}") {
            let key = comparison_key(&text);
            prop_assert_eq!(comparison_key(&key), key.clone());
            prop_assert_eq!(comparison_key(&text.to_uppercase()), comparison_key(&text.to_lowercase()));
        }
    }

    /// Text an attacker would try: any Unicode, weighted toward the
    /// characters the rules are about.
    fn hostile_text() -> impl Strategy<Value = String> {
        let interesting = prop_oneof![
            proptest::sample::select(HIDDEN.to_vec()),
            proptest::sample::select(vec![
                '\u{200c}',
                '\u{200d}',
                '\u{fe0e}',
                '\u{fe0f}',
                '\u{e0100}',
                '\u{1f3f4}',
                '\u{e0067}',
                '\u{e007f}',
                '\u{301}',
                '\u{20e3}',
                ' ',
                '\u{a0}',
                '\u{3000}',
                'a',
                'z',
                'I',
                '0',
                '\u{430}',
                '\u{3b1}',
                '是',
                '🔥',
            ]),
            any::<char>(),
        ];
        prop_oneof![
            any::<String>(),
            proptest::collection::vec(interesting, 0..80)
                .prop_map(|chars| chars.into_iter().collect::<String>()),
        ]
    }

    /// The rule, said independently of [`check_characters`]: nothing a
    /// reader cannot see, except joiners and selectors beside visible text.
    fn shows_what_it_says(text: &str) -> Result<(), String> {
        let chars: Vec<char> = text.chars().collect();
        let blank = |c: char| c.is_whitespace() || is_default_ignorable(c);
        for (index, &c) in chars.iter().enumerate() {
            let category = c.general_category();
            if matches!(
                category,
                GeneralCategory::Control
                    | GeneralCategory::LineSeparator
                    | GeneralCategory::ParagraphSeparator
            ) || ('\u{202a}'..='\u{202e}').contains(&c)
                || ('\u{2066}'..='\u{2069}').contains(&c)
                || [
                    '\u{200b}', '\u{200e}', '\u{200f}', '\u{61c}', '\u{feff}', '\u{2060}', '\u{ad}',
                ]
                .contains(&c)
            {
                return Err(format!("refused character {c:?} accepted"));
            }
            if c == ZWJ || c == ZWNJ {
                let before = index.checked_sub(1).and_then(|i| chars.get(i)).copied();
                let after = chars.get(index + 1).copied();
                if before.is_none_or(blank) && before.is_none_or(|b| !kind(b).eq(&Kind::Selector)) {
                    return Err(format!(
                        "joiner without a visible character before it at {index}"
                    ));
                }
                if after.is_none_or(blank) {
                    return Err(format!(
                        "joiner without a visible character after it at {index}"
                    ));
                }
            }
        }
        if !text.is_empty() && text.chars().all(blank) {
            return Err("blank once invisible characters are removed".to_owned());
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(
            std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(4_000)
        ))]

        /// Fuzz of the text parsers: no input panics, and whatever is
        /// accepted shows what it says and has a non-empty, stable key.
        #[test]
        fn text_parsers_accept_only_text_that_shows_what_it_says(raw in hostile_text()) {
            if let Ok(label) = OptionLabel::parse(&raw) {
                prop_assert_eq!(shows_what_it_says(label.as_str()), Ok(()));
                let key = label.comparison_key();
                prop_assert!(!key.is_empty());
                prop_assert_eq!(comparison_key(&key), key);
            }
            if let Ok(write_in) = WriteIn::parse(&raw) {
                prop_assert_eq!(shows_what_it_says(write_in.as_str()), Ok(()));
                prop_assert!(!write_in.comparison_key().is_empty());
            }
            if let Ok(measure) = Measure::parse(&raw) {
                prop_assert_eq!(shows_what_it_says(measure.as_str()), Ok(()));
            }
            for piece in split_option_text(&raw) {
                if let Ok(label) = OptionLabel::parse(&piece) {
                    prop_assert_eq!(shows_what_it_says(label.as_str()), Ok(()));
                }
            }
        }

        /// The key is deterministic and idempotent over any text, and
        /// blind to case and to look-alike substitutions.
        #[test]
        fn comparison_key_is_idempotent_over_any_text(raw in hostile_text()) {
            let key = comparison_key(&raw);
            prop_assert_eq!(comparison_key(&raw), key.clone());
            prop_assert_eq!(comparison_key(&key), key);
        }

        #[test]
        fn a_cyrillic_look_alike_meets_its_latin_word(word in "[aceopxy]{1,20}") {
            let cyrillic: String = word
                .chars()
                .map(|c| match c {
                    'a' => '\u{430}',
                    'c' => '\u{441}',
                    'e' => '\u{435}',
                    'o' => '\u{43e}',
                    'p' => '\u{440}',
                    'x' => '\u{445}',
                    _ => '\u{443}',
                })
                .collect();
            prop_assert_eq!(comparison_key(&cyrillic), comparison_key(&word.to_uppercase()));
        }
    }
}
