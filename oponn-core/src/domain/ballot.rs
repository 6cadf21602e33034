//! Ballots: the validated draft a person submits, and the ballot voters see.

use std::collections::HashSet;

use time::OffsetDateTime;

use super::ids::{BallotId, OptionId, OwnerId};
use super::schedule::{Schedule, StartRequest, Status, WindowRequest};
use super::settings::BallotSettings;
use super::text::{MAX_OPTIONS, Measure, OptionLabel};
use super::validation::{Field, FieldError, ValidationErrors, messages};

/// What a person asks for when creating a ballot, before any rule is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BallotRequest {
    /// The question, untrimmed.
    pub measure: String,
    /// The predefined options, one entry each (see
    /// [`split_option_text`](super::text::split_option_text) for form text).
    pub options: Vec<String>,
    /// Whether voters may write in their own option.
    pub allow_write_in: bool,
    /// When voting opens.
    pub start: StartRequest,
    /// How long voting stays open; 0 minutes means until closed.
    pub window: WindowRequest,
    /// Who may vote, whether votes may change, when results show.
    pub settings: BallotSettings,
}

/// A ballot that passed every creation rule and is ready to be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BallotDraft {
    measure: Measure,
    options: Vec<OptionLabel>,
    allow_write_in: bool,
    schedule: Schedule,
    settings: BallotSettings,
}

impl BallotDraft {
    /// Checks every creation rule of `request` against `now`.
    ///
    /// # Errors
    /// [`ValidationErrors`] naming each field that broke a rule, with the
    /// first message for each.
    pub fn parse(request: &BallotRequest, now: OffsetDateTime) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let measure = errors.check(Measure::parse(&request.measure));
        let options = errors.check(parse_options(&request.options, request.allow_write_in));
        // A window that cannot be read is reported beside the start's
        // errors; the start is still checked, with no window.
        let window_minutes = errors.check(request.window.minutes());
        let schedule = match Schedule::parse(&request.start, window_minutes.unwrap_or(0), now) {
            Ok(schedule) => Some(schedule),
            Err(schedule_errors) => {
                schedule_errors.into_iter().for_each(|e| errors.push(e));
                None
            }
        };
        match (measure, options, schedule) {
            (Some(measure), Some(options), Some(schedule)) if errors.is_empty() => Ok(Self {
                measure,
                options,
                allow_write_in: request.allow_write_in,
                schedule,
                settings: request.settings,
            }),
            _ => Err(errors),
        }
    }

    /// The validated measure.
    pub fn measure(&self) -> &Measure {
        &self.measure
    }

    /// The predefined options, in the order given.
    pub fn options(&self) -> &[OptionLabel] {
        &self.options
    }

    /// Whether write-ins are allowed.
    pub fn allow_write_in(&self) -> bool {
        self.allow_write_in
    }

    /// When voting opens and closes.
    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// Who may vote, whether votes may change, when results show.
    pub fn settings(&self) -> BallotSettings {
        self.settings
    }
}

fn parse_options(raw: &[String], allow_write_in: bool) -> Result<Vec<OptionLabel>, FieldError> {
    let minimum = if allow_write_in { 1 } else { 2 };
    if raw.len() < minimum {
        let message = if allow_write_in {
            messages::TOO_FEW_OPTIONS_WITH_WRITE_INS
        } else {
            messages::TOO_FEW_OPTIONS
        };
        return Err(FieldError::new(Field::Options, message));
    }
    if raw.len() > MAX_OPTIONS {
        return Err(FieldError::new(Field::Options, messages::TOO_MANY_OPTIONS));
    }
    let labels = raw
        .iter()
        .map(|text| OptionLabel::parse(text))
        .collect::<Result<Vec<_>, _>>()?;
    let mut seen = HashSet::with_capacity(labels.len());
    if labels
        .iter()
        .all(|label| seen.insert(label.comparison_key()))
    {
        Ok(labels)
    } else {
        Err(FieldError::new(
            Field::Options,
            messages::OPTIONS_NOT_UNIQUE,
        ))
    }
}

/// One option of a stored ballot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BallotOption {
    id: OptionId,
    label: OptionLabel,
    write_in: bool,
}

impl BallotOption {
    pub(crate) fn new(id: OptionId, label: OptionLabel, write_in: bool) -> Self {
        Self {
            id,
            label,
            write_in,
        }
    }

    /// The option's number within its ballot.
    pub fn id(&self) -> OptionId {
        self.id
    }

    /// The option's text.
    pub fn label(&self) -> &str {
        self.label.as_str()
    }

    /// True for an option a voter wrote in.
    pub fn is_write_in(&self) -> bool {
        self.write_in
    }
}

/// A stored ballot, opened: its text decrypted and ready to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ballot {
    id: BallotId,
    measure: Measure,
    options: Vec<BallotOption>,
    allow_write_in: bool,
    schedule: Schedule,
    closed_at: Option<OffsetDateTime>,
    created_at: OffsetDateTime,
    owner: Option<OwnerId>,
    settings: BallotSettings,
}

/// The parts a [`Ballot`] is assembled from when it is opened.
pub(crate) struct BallotParts {
    pub(crate) id: BallotId,
    pub(crate) measure: Measure,
    pub(crate) options: Vec<BallotOption>,
    pub(crate) allow_write_in: bool,
    pub(crate) schedule: Schedule,
    pub(crate) closed_at: Option<OffsetDateTime>,
    pub(crate) created_at: OffsetDateTime,
    pub(crate) owner: Option<OwnerId>,
    pub(crate) settings: BallotSettings,
}

impl Ballot {
    pub(crate) fn from_parts(parts: BallotParts) -> Self {
        let BallotParts {
            id,
            measure,
            mut options,
            allow_write_in,
            schedule,
            closed_at,
            created_at,
            owner,
            settings,
        } = parts;
        options.sort_by_key(BallotOption::id);
        Self {
            id,
            measure,
            options,
            allow_write_in,
            schedule,
            closed_at,
            created_at,
            owner,
            settings,
        }
    }

    /// Whether `requester` owns this ballot (see [`OwnerId::owns`]).
    pub fn is_owned_by(&self, requester: &OwnerId) -> bool {
        requester.owns(self.owner.as_ref())
    }

    /// The ballot's id.
    pub fn id(&self) -> BallotId {
        self.id
    }

    /// The question put to voters.
    pub fn measure(&self) -> &str {
        self.measure.as_str()
    }

    /// Every option, predefined first, then write-ins in the order they came.
    pub fn options(&self) -> &[BallotOption] {
        &self.options
    }

    /// The option numbered `id`, if the ballot has it.
    pub fn option(&self, id: OptionId) -> Option<&BallotOption> {
        self.options.iter().find(|option| option.id == id)
    }

    /// Whether voters may write in their own option.
    pub fn allow_write_in(&self) -> bool {
        self.allow_write_in
    }

    /// When voting opens and closes by itself.
    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// When the owner closed voting early, if they did.
    pub fn closed_at(&self) -> Option<OffsetDateTime> {
        self.closed_at
    }

    /// When the ballot was created.
    pub fn created_at(&self) -> OffsetDateTime {
        self.created_at
    }

    /// Who created it, when they were known.
    pub fn owner(&self) -> Option<&OwnerId> {
        self.owner.as_ref()
    }

    /// Who may vote, whether votes may change, when results show.
    pub fn settings(&self) -> BallotSettings {
        self.settings
    }

    /// The ballot's status at `now`.
    pub fn status_at(&self, now: OffsetDateTime) -> Status {
        self.schedule.status_at(now, self.closed_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-22 12:00 UTC);

    fn request(options: Vec<String>, allow_write_in: bool) -> BallotRequest {
        BallotRequest {
            measure: "lunch?".to_owned(),
            options,
            allow_write_in,
            start: StartRequest::Now,
            window: WindowRequest::Minutes(0),
            settings: BallotSettings::default(),
        }
    }

    fn options_message(options: &[&str], allow_write_in: bool) -> Option<&'static str> {
        let options = options.iter().map(|o| (*o).to_owned()).collect();
        BallotDraft::parse(&request(options, allow_write_in), NOW)
            .err()
            .and_then(|errors| errors.get(Field::Options))
    }

    #[test]
    fn a_typed_window_is_checked_beside_every_other_field() {
        let broken = BallotRequest {
            measure: String::new(),
            start: StartRequest::Scheduled("yesterday".to_owned()),
            window: WindowRequest::Typed("soon".to_owned()),
            ..request(vec!["a".to_owned(), "b".to_owned()], false)
        };
        let errors = BallotDraft::parse(&broken, NOW).unwrap_err();
        assert_eq!(
            errors.get(Field::VotingWindow),
            Some(messages::VOTING_WINDOW_FORMAT)
        );
        assert!(errors.get(Field::Measure).is_some());
        assert!(errors.get(Field::ScheduledStart).is_some());
        let typed = BallotRequest {
            window: WindowRequest::Typed(" 90 ".to_owned()),
            ..request(vec!["a".to_owned(), "b".to_owned()], false)
        };
        let draft = BallotDraft::parse(&typed, NOW).unwrap();
        assert_eq!(
            draft.schedule().ends_at(),
            Some(NOW + time::Duration::minutes(90))
        );
    }

    #[test]
    fn option_count_rules_depend_on_write_ins() {
        assert_eq!(
            options_message(&["pizza"], false),
            Some(messages::TOO_FEW_OPTIONS)
        );
        assert_eq!(options_message(&["pizza"], true), None);
        assert_eq!(
            options_message(&[], true),
            Some(messages::TOO_FEW_OPTIONS_WITH_WRITE_INS)
        );
    }

    #[test]
    fn options_must_be_unique_ignoring_case_and_normalization() {
        assert_eq!(
            options_message(&["Pizza", "pIZZA"], false),
            Some(messages::OPTIONS_NOT_UNIQUE)
        );
        assert_eq!(
            options_message(&["café", "cafe\u{301}"], false),
            Some(messages::OPTIONS_NOT_UNIQUE)
        );
        assert_eq!(options_message(&["pizza", "pasta"], false), None);
    }

    #[test]
    fn look_alike_options_are_not_unique() {
        for look_alike in ["pizz\u{430}", "P\u{456}zza", "Ｐｉｚｚａ"] {
            assert_eq!(
                options_message(&["Pizza", look_alike], false),
                Some(messages::OPTIONS_NOT_UNIQUE),
                "{look_alike}"
            );
        }
        assert_eq!(
            options_message(&["Pizza", "piz\u{200b}za"], false),
            Some(messages::OPTION_HIDDEN_CHARACTERS)
        );
    }

    #[test]
    fn ballots_written_in_other_scripts_keep_their_options_apart() {
        for (measure, options) in [
            ("Συμφωνείτε;", ["Ναι", "Όχι", "Ίσως"]),
            ("Вы согласны?", ["Да", "Нет", "Не знаю"]),
            ("你同意吗？", ["是", "否", "不知道"]),
            ("هل توافق؟", ["نعم", "لا", "ربما"]),
        ] {
            let mut request = request(options.iter().map(|o| (*o).to_owned()).collect(), false);
            request.measure = measure.to_owned();
            let draft = BallotDraft::parse(&request, NOW)
                .unwrap_or_else(|errors| panic!("{measure}: {errors}"));
            assert_eq!(draft.measure().as_str(), measure);
            let labels: Vec<&str> = draft.options().iter().map(OptionLabel::as_str).collect();
            assert_eq!(labels, options);
        }
    }

    #[test]
    fn every_broken_field_is_reported_at_once() {
        let errors = BallotDraft::parse(
            &BallotRequest {
                measure: "x".to_owned(),
                options: vec!["only".to_owned()],
                allow_write_in: false,
                start: StartRequest::Scheduled("nonsense".to_owned()),
                window: WindowRequest::Minutes(10),
                settings: BallotSettings::default(),
            },
            NOW,
        )
        .unwrap_err();
        assert_eq!(
            errors.get(Field::Measure),
            Some(messages::MEASURE_TOO_SHORT)
        );
        assert_eq!(errors.get(Field::Options), Some(messages::TOO_FEW_OPTIONS));
        assert_eq!(
            errors.get(Field::ScheduledStart),
            Some(messages::SCHEDULED_START_FORMAT)
        );
    }

    proptest! {
        #[test]
        fn option_count_limits_hold_on_both_sides(count in 0usize..80, allow_write_in: bool) {
            let options = (0..count).map(|i| format!("option {i}")).collect();
            let accepted = BallotDraft::parse(&request(options, allow_write_in), NOW).is_ok();
            let minimum = if allow_write_in { 1 } else { 2 };
            prop_assert_eq!(accepted, (minimum..=MAX_OPTIONS).contains(&count));
        }

        #[test]
        fn option_length_limits_hold_on_both_sides(len in 0usize..80) {
            let options = vec!["a".repeat(len), "other".to_owned()];
            let message = BallotDraft::parse(&request(options, false), NOW)
                .err()
                .and_then(|errors| errors.get(Field::Options));
            if (1..=64).contains(&len) {
                prop_assert_eq!(message, None);
            } else {
                prop_assert_eq!(message, Some(messages::OPTION_LENGTH));
            }
        }
    }
}
