//! Ballots: the validated draft a person submits, and the ballot voters see.

use std::collections::HashMap;

use time::OffsetDateTime;

use super::ids::{BallotId, OptionId, OwnerId};
use super::schedule::{Schedule, StartRequest, Status, WindowRequest};
use super::settings::{BallotMethod, BallotSettings};
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
    /// How voters choose and how the choices are counted.
    pub method: MethodRequest,
}

/// The voting method a person asks for, before its rules are checked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MethodRequest {
    /// One option per voter.
    #[default]
    Single,
    /// Several options per voter, between the bounds: by default 1 and the
    /// number of predefined options.
    Approval {
        /// The fewest options a voter must approve, if given.
        min_choices: Option<i64>,
        /// The most options a voter may approve, if given.
        max_choices: Option<i64>,
    },
    /// A ranking per voter.
    Ranked,
}

/// A ballot that passed every creation rule and is ready to be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BallotDraft {
    measure: Measure,
    options: Vec<OptionLabel>,
    allow_write_in: bool,
    schedule: Schedule,
    settings: BallotSettings,
    method: BallotMethod,
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
        let schedule = match &request.window {
            WindowRequest::Until(end) => Schedule::parse_until(&request.start, end, now),
            _ => Schedule::parse(&request.start, window_minutes.unwrap_or(0), now),
        };
        let schedule = match schedule {
            Ok(schedule) => Some(schedule),
            Err(schedule_errors) => {
                schedule_errors.into_iter().for_each(|e| errors.push(e));
                None
            }
        };
        let method = parse_method(request, options.as_ref().map(Vec::len), &mut errors);
        match (measure, options, schedule, method) {
            (Some(measure), Some(options), Some(schedule), Some(method)) if errors.is_empty() => {
                Ok(Self {
                    measure,
                    options,
                    allow_write_in: request.allow_write_in,
                    schedule,
                    settings: request.settings,
                    method,
                })
            }
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

    /// How voters choose and how the choices are counted.
    pub fn method(&self) -> BallotMethod {
        self.method
    }
}

/// Checks the method `request` asks for against its `options` (their
/// number, when they are valid): approval bounds lie in
/// `1 ..= options` with the minimum at most the maximum; a ranked ballot
/// takes no write-ins. Each broken rule is pushed to `errors`.
fn parse_method(
    request: &BallotRequest,
    options: Option<usize>,
    errors: &mut ValidationErrors,
) -> Option<BallotMethod> {
    match request.method {
        MethodRequest::Single => Some(BallotMethod::Single),
        MethodRequest::Ranked if request.allow_write_in => {
            errors.push(FieldError::new(Field::Options, messages::RANKED_WRITE_INS));
            None
        }
        MethodRequest::Ranked => Some(BallotMethod::Ranked),
        MethodRequest::Approval {
            min_choices,
            max_choices,
        } => {
            let count = i64::try_from(options.unwrap_or(MAX_OPTIONS)).unwrap_or(i64::MAX);
            let bound = |field: Field, value: i64| {
                if value < 1 {
                    Err(FieldError::new(field, messages::CHOICES_AT_LEAST_ONE))
                } else if value > count {
                    Err(FieldError::new(field, messages::CHOICES_OVER_OPTIONS))
                } else {
                    u32::try_from(value)
                        .map_err(|_| FieldError::new(field, messages::CHOICES_OVER_OPTIONS))
                }
            };
            let min = errors.check(bound(Field::MinChoices, min_choices.unwrap_or(1)));
            let max = errors.check(bound(Field::MaxChoices, max_choices.unwrap_or(count)));
            match (min, max) {
                (Some(min), Some(max)) if min > max => {
                    errors.push(FieldError::new(
                        Field::MinChoices,
                        messages::CHOICES_MIN_OVER_MAX,
                    ));
                    None
                }
                // Bounds checked against options that broke their own
                // rules are not a method: the options' error stands alone.
                (Some(min_choices), Some(max_choices)) if options.is_some() => {
                    Some(BallotMethod::Approval {
                        min_choices,
                        max_choices,
                    })
                }
                _ => None,
            }
        }
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
    let mut seen: HashMap<String, &OptionLabel> = HashMap::with_capacity(labels.len());
    for label in &labels {
        if let Some(earlier) = seen.insert(label.comparison_key(), label) {
            return Err(FieldError::naming(
                Field::Options,
                messages::options_repeat(label.as_str(), earlier.as_str()),
            ));
        }
    }
    Ok(labels)
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
    method: BallotMethod,
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
    pub(crate) method: BallotMethod,
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
            method,
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
            method,
        }
    }

    /// Whether `requester` owns this ballot (see [`OwnerId::owns`]).
    pub fn is_owned_by(&self, requester: &OwnerId) -> bool {
        requester.owns(self.owner.as_ref())
    }

    /// How voters choose and how the choices are counted.
    pub fn method(&self) -> BallotMethod {
        self.method
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

    /// When voting closes or closed: the earlier of its end time and the
    /// moment its owner closed it; none while it closes only when its
    /// owner says.
    pub fn closes_at(&self) -> Option<OffsetDateTime> {
        self.schedule.closes_at(self.closed_at)
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
            method: MethodRequest::Single,
        }
    }

    fn options_message(options: &[&str], allow_write_in: bool) -> Option<String> {
        let options = options.iter().map(|o| (*o).to_owned()).collect();
        BallotDraft::parse(&request(options, allow_write_in), NOW)
            .err()
            .and_then(|errors| errors.get(Field::Options).map(str::to_owned))
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

    fn with_method(method: MethodRequest, allow_write_in: bool) -> BallotRequest {
        BallotRequest {
            method,
            ..request(["a", "b", "c"].map(str::to_owned).to_vec(), allow_write_in)
        }
    }

    fn approval(min_choices: Option<i64>, max_choices: Option<i64>) -> MethodRequest {
        MethodRequest::Approval {
            min_choices,
            max_choices,
        }
    }

    #[test]
    fn approval_bounds_default_to_one_and_every_option() {
        let draft = BallotDraft::parse(&with_method(approval(None, None), false), NOW).unwrap();
        assert_eq!(
            draft.method(),
            BallotMethod::Approval {
                min_choices: 1,
                max_choices: 3
            }
        );
        let draft = BallotDraft::parse(&with_method(approval(Some(2), Some(2)), true), NOW);
        assert_eq!(draft.unwrap().method().min_choices(), Some(2));
    }

    #[test]
    fn approval_bounds_are_checked_at_their_edges() {
        let errors = |min, max| {
            BallotDraft::parse(&with_method(approval(min, max), false), NOW)
                .err()
                .map(|errors| {
                    (
                        errors.rule(Field::MinChoices),
                        errors.rule(Field::MaxChoices),
                    )
                })
        };
        assert_eq!(errors(Some(1), Some(3)), None);
        assert_eq!(
            errors(Some(0), Some(4)),
            Some((
                Some(messages::CHOICES_AT_LEAST_ONE),
                Some(messages::CHOICES_OVER_OPTIONS)
            ))
        );
        assert_eq!(
            errors(Some(4), Some(0)),
            Some((
                Some(messages::CHOICES_OVER_OPTIONS),
                Some(messages::CHOICES_AT_LEAST_ONE)
            ))
        );
        assert_eq!(
            errors(Some(3), Some(2)),
            Some((Some(messages::CHOICES_MIN_OVER_MAX), None))
        );
        assert_eq!(
            errors(Some(i64::MIN), Some(i64::MAX)),
            Some((
                Some(messages::CHOICES_AT_LEAST_ONE),
                Some(messages::CHOICES_OVER_OPTIONS)
            ))
        );
    }

    #[test]
    fn a_ranked_ballot_takes_no_write_ins() {
        let errors =
            BallotDraft::parse(&with_method(MethodRequest::Ranked, true), NOW).unwrap_err();
        assert_eq!(errors.get(Field::Options), Some(messages::RANKED_WRITE_INS));
        let draft = BallotDraft::parse(&with_method(MethodRequest::Ranked, false), NOW).unwrap();
        assert_eq!(draft.method(), BallotMethod::Ranked);
    }

    #[test]
    fn option_count_rules_depend_on_write_ins() {
        assert_eq!(
            options_message(&["pizza"], false).as_deref(),
            Some(messages::TOO_FEW_OPTIONS)
        );
        assert_eq!(options_message(&["pizza"], true).as_deref(), None);
        assert_eq!(
            options_message(&[], true).as_deref(),
            Some(messages::TOO_FEW_OPTIONS_WITH_WRITE_INS)
        );
    }

    #[test]
    fn options_must_be_unique_ignoring_case_and_normalization() {
        assert_eq!(
            options_message(&["Pizza", "pIZZA"], false).as_deref(),
            Some(r#"options must be unique: "pIZZA" is the same option as "Pizza""#)
        );
        assert_eq!(
            options_message(&["café", "cafe\u{301}"], false).as_deref(),
            Some(messages::options_repeat("cafe\u{301}", "café").as_str())
        );
        assert_eq!(options_message(&["pizza", "pasta"], false).as_deref(), None);
    }

    #[test]
    fn look_alike_options_are_not_unique() {
        for look_alike in ["pizz\u{430}", "P\u{456}zza", "Ｐｉｚｚａ"] {
            assert_eq!(
                options_message(&["Pizza", look_alike], false).as_deref(),
                Some(messages::options_repeat(look_alike, "Pizza").as_str()),
                "{look_alike}"
            );
        }
        assert_eq!(
            options_message(&["Pizza", "piz\u{200b}za"], false).as_deref(),
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
                method: MethodRequest::Single,
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
                .and_then(|errors| errors.rule(Field::Options));
            if (1..=64).contains(&len) {
                prop_assert_eq!(message, None);
            } else {
                prop_assert_eq!(message, Some(messages::OPTION_LENGTH));
            }
        }
    }
}
