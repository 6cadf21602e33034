//! When a ballot takes votes: its start, its voting window and its status.

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Duration, OffsetDateTime, PrimitiveDateTime, UtcOffset};

use super::validation::{Field, FieldError, messages};

/// Longest voting window: one year, in minutes.
pub const MAX_WINDOW_MINUTES: u32 = 525_600;

/// The voting window a ballot gets when its creator names none, on the
/// form and through the API alike: one hour.
pub const DEFAULT_WINDOW_MINUTES: u32 = 60;

/// Furthest ahead a scheduled start may lie: 366 days from now.
///
/// A ballot is for a vote people are waiting for, not for a date years
/// away; the bound also keeps every time a schedule derives (its end, a
/// countdown) far from the limits of the date type, whatever the input.
pub const MAX_SCHEDULE_AHEAD: Duration = Duration::days(366);

/// When voting opens, as the person creating the ballot chose it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartRequest {
    /// Open as soon as the ballot exists.
    Now,
    /// Open at a time given as text: RFC 3339, or the `YYYY-MM-DDTHH:MM[:SS]`
    /// a browser's `datetime-local` input sends, read as UTC.
    Scheduled(String),
}

/// How long voting stays open, as the person creating the ballot gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WindowRequest {
    /// A number of minutes; 0 means until closed.
    Minutes(u32),
    /// Minutes as typed into a form, read by [`parse_window_minutes`].
    Typed(String),
    /// Voting closes at a time given as text, read as a scheduled start
    /// is: RFC 3339, or a `datetime-local` value read as UTC. It must come
    /// after voting opens and at most [`MAX_WINDOW_MINUTES`] later.
    Until(String),
}

impl WindowRequest {
    /// The window in minutes.
    ///
    /// # Errors
    /// A [`Field::VotingWindow`] error for typed text that is not a whole
    /// number of minutes from 0 to [`MAX_WINDOW_MINUTES`]. An end time has
    /// no minutes of its own: it reads as 0 here, and [`Schedule::parse`]
    /// places it.
    pub fn minutes(&self) -> Result<u32, FieldError> {
        match self {
            Self::Minutes(minutes) => Ok(*minutes),
            Self::Typed(text) => parse_window_minutes(text),
            Self::Until(_) => Ok(0),
        }
    }
}

impl From<u32> for WindowRequest {
    fn from(minutes: u32) -> Self {
        Self::Minutes(minutes)
    }
}

/// A ballot's voting period, fixed at creation except for closing early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    starts_at: OffsetDateTime,
    ends_at: Option<OffsetDateTime>,
}

impl Schedule {
    /// Builds the schedule from a start request and a window in minutes
    /// (0 = voting never ends by itself), checked against `now`.
    ///
    /// Every computation on the input is checked: a time outside what can
    /// be represented is a field error, never a panic.
    ///
    /// # Errors
    /// A [`Field::ScheduledStart`] error for a missing, malformed or past
    /// start, or one more than [`MAX_SCHEDULE_AHEAD`] away; a
    /// [`Field::VotingWindow`] error for a window over a year.
    pub fn parse(
        start: &StartRequest,
        window_minutes: u32,
        now: OffsetDateTime,
    ) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let starts_at = match start {
            StartRequest::Now => Some(now),
            StartRequest::Scheduled(text) => match parse_start(text, now) {
                Ok(at) => Some(at),
                Err(error) => {
                    errors.push(error);
                    None
                }
            },
        };
        if window_minutes > MAX_WINDOW_MINUTES {
            errors.push(FieldError::new(
                Field::VotingWindow,
                messages::VOTING_WINDOW_TOO_LONG,
            ));
        }
        match starts_at {
            Some(starts_at) if errors.is_empty() => {
                let ends_at = match window_minutes {
                    0 => None,
                    minutes => Some(
                        starts_at
                            .checked_add(Duration::minutes(i64::from(minutes)))
                            .ok_or_else(|| vec![too_far()])?,
                    ),
                };
                Ok(Self { starts_at, ends_at })
            }
            _ => Err(errors),
        }
    }

    /// Builds the schedule from a start request and an end time given as
    /// text ([`WindowRequest::Until`]), checked against `now`.
    ///
    /// # Errors
    /// The start's errors as [`Schedule::parse`] gives them; a
    /// [`Field::VotingWindow`] error for an end that is missing, malformed,
    /// not after the start, or more than [`MAX_WINDOW_MINUTES`] after it.
    pub fn parse_until(
        start: &StartRequest,
        end: &str,
        now: OffsetDateTime,
    ) -> Result<Self, Vec<FieldError>> {
        let end = parse_end(end);
        let schedule = Self::parse(start, 0, now);
        match (schedule, end) {
            (Ok(schedule), Ok(end)) => {
                let window = end - schedule.starts_at;
                if window <= Duration::ZERO {
                    Err(vec![FieldError::new(
                        Field::VotingWindow,
                        messages::VOTING_END_NOT_AFTER_START,
                    )])
                } else if window > Duration::minutes(i64::from(MAX_WINDOW_MINUTES)) {
                    Err(vec![FieldError::new(
                        Field::VotingWindow,
                        messages::VOTING_WINDOW_TOO_LONG,
                    )])
                } else {
                    // Within a year of a start within a year of now: far
                    // from the date type's limits, so the conversion holds.
                    let ends_at = end.checked_to_offset(UtcOffset::UTC).unwrap_or(end);
                    Ok(Self {
                        starts_at: schedule.starts_at,
                        ends_at: Some(ends_at),
                    })
                }
            }
            (Ok(_), Err(error)) => Err(vec![error]),
            (Err(mut errors), end) => {
                errors.extend(end.err());
                Err(errors)
            }
        }
    }

    /// Rebuilds a stored schedule.
    pub fn from_parts(starts_at: OffsetDateTime, ends_at: Option<OffsetDateTime>) -> Self {
        Self { starts_at, ends_at }
    }

    /// When voting opens.
    pub fn starts_at(&self) -> OffsetDateTime {
        self.starts_at
    }

    /// When voting closes by itself, if ever.
    pub fn ends_at(&self) -> Option<OffsetDateTime> {
        self.ends_at
    }

    /// When voting closes (or closed): the earlier of the end time and
    /// `closed_at`, when the owner closed it early; none while it closes
    /// only when its owner says.
    pub fn closes_at(&self, closed_at: Option<OffsetDateTime>) -> Option<OffsetDateTime> {
        match (self.ends_at, closed_at) {
            (Some(end), Some(closed)) => Some(end.min(closed)),
            (end, closed) => end.or(closed),
        }
    }

    /// The status at `now`, given when (if ever) the owner closed it early.
    pub fn status_at(&self, now: OffsetDateTime, closed_at: Option<OffsetDateTime>) -> Status {
        let end = self.closes_at(closed_at);
        if now < self.starts_at {
            Status::Pending {
                starts_in: self.starts_at - now,
            }
        } else if end.is_some_and(|end| now >= end) {
            Status::Ended
        } else {
            Status::Active {
                ends_in: end.map(|end| end - now),
            }
        }
    }
}

/// Reads a voting window in minutes as a form sends it.
///
/// # Errors
/// A [`Field::VotingWindow`] error for anything but a whole number of
/// minutes from 0 to [`MAX_WINDOW_MINUTES`].
pub fn parse_window_minutes(raw: &str) -> Result<u32, FieldError> {
    let minutes: u64 = raw
        .trim()
        .parse()
        .map_err(|_| FieldError::new(Field::VotingWindow, messages::VOTING_WINDOW_FORMAT))?;
    u32::try_from(minutes)
        .ok()
        .filter(|minutes| *minutes <= MAX_WINDOW_MINUTES)
        .ok_or(FieldError::new(
            Field::VotingWindow,
            messages::VOTING_WINDOW_TOO_LONG,
        ))
}

fn parse_start(text: &str, now: OffsetDateTime) -> Result<OffsetDateTime, FieldError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(FieldError::new(
            Field::ScheduledStart,
            messages::SCHEDULED_START_REQUIRED,
        ));
    }
    let at = parse_timestamp(text).ok_or(FieldError::new(
        Field::ScheduledStart,
        messages::SCHEDULED_START_FORMAT,
    ))?;
    // Comparing instants never converts, so it cannot overflow; converting
    // to UTC can (9999-12-31T23:59:59-23:59 is in the year 10000).
    if at <= now {
        return Err(FieldError::new(
            Field::ScheduledStart,
            messages::SCHEDULED_START_IN_PAST,
        ));
    }
    let at = at.checked_to_offset(UtcOffset::UTC).ok_or_else(too_far)?;
    let latest = now.checked_add(MAX_SCHEDULE_AHEAD).ok_or_else(too_far)?;
    if at > latest {
        return Err(too_far());
    }
    Ok(at)
}

fn parse_end(text: &str) -> Result<OffsetDateTime, FieldError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(FieldError::new(
            Field::VotingWindow,
            messages::VOTING_END_REQUIRED,
        ));
    }
    parse_timestamp(text).ok_or(FieldError::new(
        Field::VotingWindow,
        messages::VOTING_END_FORMAT,
    ))
}

fn too_far() -> FieldError {
    FieldError::new(Field::ScheduledStart, messages::SCHEDULED_START_TOO_FAR)
}

/// The instant `text` names, in the offset it was written in.
fn parse_timestamp(text: &str) -> Option<OffsetDateTime> {
    if let Ok(at) = OffsetDateTime::parse(text, &Rfc3339) {
        return Some(at);
    }
    let minutes = format_description!("[year]-[month]-[day]T[hour]:[minute]");
    let seconds = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    PrimitiveDateTime::parse(text, &minutes)
        .or_else(|_| PrimitiveDateTime::parse(text, &seconds))
        .ok()
        .map(PrimitiveDateTime::assume_utc)
}

/// Where a ballot stands at a moment, derived from its schedule and the clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Not open yet; opens after `starts_in`.
    Pending {
        /// Time left until voting opens.
        starts_in: Duration,
    },
    /// Taking votes; closes after `ends_in`, or never by itself.
    Active {
        /// Time left until voting closes, if it closes by itself.
        ends_in: Option<Duration>,
    },
    /// Closed: its window passed or its owner closed it.
    Ended,
}

impl Status {
    /// A stable lowercase name: `pending`, `active` or `ended`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Pending { .. } => "pending",
            Status::Active { .. } => "active",
            Status::Ended => "ended",
        }
    }

    /// What a person reads: "starts in 5 minutes", "ends in 2 hours",
    /// "voting open" or "voting closed".
    pub fn label(&self) -> String {
        match self {
            Status::Pending { starts_in } => format!("starts in {}", humanize(*starts_in)),
            Status::Active {
                ends_in: Some(ends_in),
            } => format!("ends in {}", humanize(*ends_in)),
            Status::Active { ends_in: None } => "voting open".to_owned(),
            Status::Ended => "voting closed".to_owned(),
        }
    }
}

/// A positive span in the largest whole unit that fits, rounded up so a
/// countdown never reads "0 minutes" while time remains.
fn humanize(span: Duration) -> String {
    let seconds = span.whole_seconds().max(1);
    // Never `seconds + 59`: a span near `Duration::MAX` would overflow.
    let minutes = seconds / 60 + i64::from(seconds % 60 != 0);
    let (count, unit) = if minutes < 60 {
        (minutes, "minute")
    } else if minutes < 48 * 60 {
        (minutes / 60, "hour")
    } else {
        (minutes / (24 * 60), "day")
    };
    if count == 1 {
        format!("1 {unit}")
    } else {
        format!("{count} {unit}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-22 12:00 UTC);

    fn scheduled(text: &str) -> StartRequest {
        StartRequest::Scheduled(text.to_owned())
    }

    fn message_of(result: Result<Schedule, Vec<FieldError>>) -> &'static str {
        result.unwrap_err()[0].rule()
    }

    #[test]
    fn start_now_with_a_window_ends_after_it() {
        let schedule = Schedule::parse(&StartRequest::Now, 90, NOW).unwrap();
        assert_eq!(schedule.starts_at(), NOW);
        assert_eq!(schedule.ends_at(), Some(datetime!(2026-11-22 13:30 UTC)));
        assert_eq!(
            Schedule::parse(&StartRequest::Now, 0, NOW)
                .unwrap()
                .ends_at(),
            None
        );
    }

    #[test]
    fn scheduled_start_accepts_browser_and_rfc3339_forms() {
        let expected = datetime!(2026-11-23 09:30 UTC);
        for text in [
            "2026-11-23T09:30",
            "2026-11-23T09:30:00",
            "2026-11-23T09:30:00Z",
            "2026-11-23T10:30:00+01:00",
        ] {
            let schedule = Schedule::parse(&scheduled(text), 0, NOW).unwrap();
            assert_eq!(schedule.starts_at(), expected, "{text}");
        }
    }

    #[test]
    fn scheduled_start_messages() {
        assert_eq!(
            message_of(Schedule::parse(&scheduled("  "), 0, NOW)),
            messages::SCHEDULED_START_REQUIRED
        );
        assert_eq!(
            message_of(Schedule::parse(&scheduled("tomorrow"), 0, NOW)),
            messages::SCHEDULED_START_FORMAT
        );
        assert_eq!(
            message_of(Schedule::parse(&scheduled("2026-11-22T12:00"), 0, NOW)),
            messages::SCHEDULED_START_IN_PAST
        );
        assert_eq!(
            message_of(Schedule::parse(
                &StartRequest::Now,
                MAX_WINDOW_MINUTES + 1,
                NOW
            )),
            messages::VOTING_WINDOW_TOO_LONG
        );
    }

    #[test]
    fn an_end_time_closes_voting_then_and_is_checked_against_the_start() {
        let until = |start: &StartRequest, end: &str| Schedule::parse_until(start, end, NOW);
        let schedule = until(&StartRequest::Now, "2026-11-22T13:30:00+01:00").unwrap();
        assert_eq!(schedule.starts_at(), NOW);
        assert_eq!(schedule.ends_at(), Some(datetime!(2026-11-22 12:30 UTC)));
        let later = until(&scheduled("2026-11-23T09:00"), "2026-11-23T17:00").unwrap();
        assert_eq!(later.ends_at(), Some(datetime!(2026-11-23 17:00 UTC)));
        // At the limits: a year after the start passes, a minute more does not.
        let year = until(&StartRequest::Now, "2027-11-22T12:00:00Z").unwrap();
        assert_eq!(
            year.ends_at(),
            Some(NOW + Duration::minutes(i64::from(MAX_WINDOW_MINUTES)))
        );
        for (end, rule) in [
            ("", messages::VOTING_END_REQUIRED),
            ("  ", messages::VOTING_END_REQUIRED),
            ("tomorrow", messages::VOTING_END_FORMAT),
            ("2026-11-22T12:00:00Z", messages::VOTING_END_NOT_AFTER_START),
            ("2026-11-22T11:00", messages::VOTING_END_NOT_AFTER_START),
            ("2027-11-22T12:01:00Z", messages::VOTING_WINDOW_TOO_LONG),
            (
                "9999-12-31T23:59:59-23:59",
                messages::VOTING_WINDOW_TOO_LONG,
            ),
            ("-9999-01-01T00:00:00Z", messages::VOTING_END_FORMAT),
        ] {
            let errors = until(&StartRequest::Now, end).unwrap_err();
            assert_eq!(errors.len(), 1, "{end:?}");
            assert_eq!(errors[0].field(), Field::VotingWindow, "{end:?}");
            assert_eq!(errors[0].rule(), rule, "{end:?}");
        }
        // An end before a scheduled start is refused against that start.
        assert_eq!(
            message_of(until(&scheduled("2026-11-23T09:00"), "2026-11-23T08:59")),
            messages::VOTING_END_NOT_AFTER_START
        );
        // A bad start and a bad end are both reported.
        let both = until(&scheduled("yesterday"), "soon").unwrap_err();
        assert_eq!(both.len(), 2);
    }

    #[test]
    fn window_minutes_parse_as_whole_minutes_up_to_a_year() {
        assert_eq!(parse_window_minutes(" 90 "), Ok(90));
        assert_eq!(parse_window_minutes("525600"), Ok(MAX_WINDOW_MINUTES));
        for raw in ["-5", "1.5", "soon", ""] {
            assert_eq!(
                parse_window_minutes(raw).unwrap_err().message(),
                messages::VOTING_WINDOW_FORMAT,
                "{raw}"
            );
        }
        assert_eq!(
            parse_window_minutes("525601").unwrap_err().message(),
            messages::VOTING_WINDOW_TOO_LONG
        );
    }

    #[test]
    fn status_follows_the_clock() {
        let schedule = Schedule::parse(&scheduled("2026-11-22T12:05"), 120, NOW).unwrap();
        assert_eq!(schedule.status_at(NOW, None).label(), "starts in 5 minutes");
        let opened = datetime!(2026-11-22 12:05 UTC);
        assert_eq!(schedule.status_at(opened, None).label(), "ends in 2 hours");
        assert_eq!(
            schedule
                .status_at(opened + Duration::minutes(119), None)
                .label(),
            "ends in 1 minute"
        );
        assert_eq!(
            schedule.status_at(datetime!(2026-11-22 14:05 UTC), None),
            Status::Ended
        );
        let open_ended = Schedule::parse(&StartRequest::Now, 0, NOW).unwrap();
        assert_eq!(
            open_ended
                .status_at(NOW + Duration::days(400), None)
                .label(),
            "voting open"
        );
        assert_eq!(
            open_ended.status_at(NOW, Some(NOW)).label(),
            "voting closed"
        );
    }

    #[test]
    fn starts_at_the_end_of_representable_time_are_field_errors() {
        // Each of these panicked: the end overflowed `starts_at + window`,
        // or the conversion to UTC left the year 9999.
        for (text, window) in [
            ("9999-12-31T23:59:59Z", 1),
            ("9999-12-31T23:59:59Z", MAX_WINDOW_MINUTES),
            ("9999-12-31T23:59:59-23:59", 0),
            ("9999-12-31T23:59:59-23:59", 1),
            ("9999-12-31T23:59", 1),
            ("9999-12-31T23:59:60Z", 1),
            ("2027-11-24T00:00:00Z", 0),
        ] {
            let errors = Schedule::parse(&scheduled(text), window, NOW).unwrap_err();
            assert_eq!(
                errors,
                vec![FieldError::new(
                    Field::ScheduledStart,
                    messages::SCHEDULED_START_TOO_FAR
                )],
                "{text} + {window} minutes"
            );
        }
    }

    #[test]
    fn starts_before_representable_time_are_in_the_past() {
        for text in [
            "0000-01-01T00:00:00+23:59",
            "0000-01-01T00:00",
            "-0001-01-01T00:00",
        ] {
            let errors = Schedule::parse(&scheduled(text), 1, NOW).unwrap_err();
            assert_eq!(errors.len(), 1, "{text}");
            assert_eq!(errors[0].field(), Field::ScheduledStart, "{text}");
        }
    }

    #[test]
    fn a_start_may_lie_at_most_max_schedule_ahead_away() {
        let latest = NOW + MAX_SCHEDULE_AHEAD;
        let text = |at: OffsetDateTime| at.format(&Rfc3339).unwrap();
        let schedule = Schedule::parse(&scheduled(&text(latest)), MAX_WINDOW_MINUTES, NOW).unwrap();
        assert_eq!(schedule.starts_at(), latest);
        assert_eq!(
            schedule.ends_at(),
            Some(latest + Duration::minutes(i64::from(MAX_WINDOW_MINUTES)))
        );
        assert_eq!(
            message_of(Schedule::parse(
                &scheduled(&text(latest + Duration::seconds(1))),
                0,
                NOW
            )),
            messages::SCHEDULED_START_TOO_FAR
        );
        // The same instant written in another offset is the same answer.
        let east = latest.to_offset(time::macros::offset!(+14:00));
        assert!(Schedule::parse(&scheduled(&text(east)), 0, NOW).is_ok());
        let west = (latest + Duration::seconds(1)).to_offset(time::macros::offset!(-12:00));
        assert_eq!(
            message_of(Schedule::parse(&scheduled(&text(west)), 0, NOW)),
            messages::SCHEDULED_START_TOO_FAR
        );
    }

    #[test]
    fn labels_of_extreme_spans_do_not_overflow() {
        assert_eq!(
            humanize(Duration::MAX),
            format!("{} days", Duration::MAX.whole_days())
        );
        assert_eq!(humanize(Duration::MIN), "1 minute");
        let far = Status::Pending {
            starts_in: Duration::MAX,
        };
        assert!(far.label().starts_with("starts in "));
        let schedule = Schedule::from_parts(
            datetime!(-9999-01-01 0:00 UTC),
            Some(datetime!(9999-12-31 23:59:59.999_999_999 UTC)),
        );
        assert_eq!(
            schedule
                .status_at(datetime!(-9999-01-01 0:00 UTC), None)
                .label(),
            format!(
                "ends in {} days",
                (datetime!(9999-12-31 23:59:59.999_999_999 UTC) - datetime!(-9999-01-01 0:00 UTC))
                    .whole_days()
                    + 1
            )
        );
    }

    #[test]
    fn humanize_picks_the_largest_whole_unit() {
        assert_eq!(humanize(Duration::seconds(1)), "1 minute");
        assert_eq!(humanize(Duration::seconds(61)), "2 minutes");
        assert_eq!(humanize(Duration::minutes(60)), "1 hour");
        assert_eq!(humanize(Duration::seconds(59 * 60 + 59)), "1 hour");
        assert_eq!(humanize(Duration::hours(47)), "47 hours");
        assert_eq!(humanize(Duration::days(3)), "3 days");
    }

    /// Any start written as RFC 3339 or as a browser sends it, in any
    /// offset and any year the date type knows.
    fn any_start() -> impl Strategy<Value = String> {
        let offset = (any::<bool>(), 0u8..30, 0u8..70);
        let year = prop_oneof![2025i32..2029, 9990i32..10_001, -10_500i32..10_500];
        (
            year,
            0u8..14,
            0u8..33,
            0u8..25,
            0u8..61,
            0u8..62,
            offset,
            0u8..4,
        )
            .prop_map(
                |(year, month, day, hour, minute, second, (west, oh, om), form)| {
                    let date = format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}");
                    let sign = if west { '-' } else { '+' };
                    match form {
                        0 => date,
                        1 => format!("{date}:{second:02}"),
                        2 => format!("{date}:{second:02}Z"),
                        _ => format!("{date}:{second:02}{sign}{oh:02}:{om:02}"),
                    }
                },
            )
    }

    /// A `now` anywhere from year -9999 to 9999.
    fn any_now() -> impl Strategy<Value = OffsetDateTime> {
        let first = datetime!(-9999-01-01 0:00 UTC).unix_timestamp();
        let last = datetime!(9999-12-31 23:59:59 UTC).unix_timestamp();
        prop_oneof![
            3 => Just(NOW),
            1 => Just(datetime!(9999-12-31 23:59:59 UTC)),
            1 => Just(datetime!(9999-06-01 0:00 UTC)),
            1 => (first..=last).prop_map(|at| {
                OffsetDateTime::from_unix_timestamp(at).unwrap_or(NOW)
            }),
        ]
    }

    fn any_window() -> impl Strategy<Value = u32> {
        prop_oneof![
            Just(0),
            Just(1),
            Just(MAX_WINDOW_MINUTES),
            Just(MAX_WINDOW_MINUTES + 1),
            Just(u32::MAX),
            any::<u32>(),
        ]
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(
            std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(2_000)
        ))]

        /// Whatever the input, parsing either yields a consistent schedule
        /// or field errors naming the start or the window; it never panics.
        #[test]
        fn schedule_parse_never_panics_and_is_consistent(
            start in prop_oneof![any_start(), ".{0,40}", Just("9999-12-31T23:59:59-23:59".to_owned())],
            window in any_window(),
            now in any_now(),
        ) {
            match Schedule::parse(&StartRequest::Scheduled(start.clone()), window, now) {
                Ok(schedule) => {
                    prop_assert!(schedule.starts_at() > now);
                    prop_assert!(schedule.starts_at() - now <= MAX_SCHEDULE_AHEAD);
                    prop_assert_eq!(schedule.starts_at().offset(), UtcOffset::UTC);
                    prop_assert!(window <= MAX_WINDOW_MINUTES);
                    let expected_end = (window > 0)
                        .then(|| schedule.starts_at() + Duration::minutes(i64::from(window)));
                    prop_assert_eq!(schedule.ends_at(), expected_end);
                    let _ = schedule.status_at(now, None).label();
                    let _ = schedule.status_at(now, Some(now)).label();
                }
                Err(errors) => {
                    prop_assert!(!errors.is_empty());
                    for error in &errors {
                        prop_assert!(
                            matches!(error.field(), Field::ScheduledStart | Field::VotingWindow),
                            "{error}"
                        );
                    }
                }
            }
            let _ = Schedule::parse(&StartRequest::Now, window, now);
        }

        #[test]
        fn end_times_never_panic(raw in prop_oneof![".{0,32}", "[+-]?[0-9]{1,6}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2})?([+-][0-9]{2}:[0-9]{2}|Z)?"]) {
            if let Ok(schedule) = Schedule::parse_until(&StartRequest::Now, &raw, NOW) {
                let ends_at = schedule.ends_at().expect("an end time always ends");
                prop_assert!(ends_at > NOW);
                prop_assert!(ends_at - NOW <= Duration::minutes(i64::from(MAX_WINDOW_MINUTES)));
            }
        }

        #[test]
        fn window_minutes_never_panic(raw in prop_oneof![".{0,24}", "[-+ ]?[0-9]{1,25}"]) {
            if let Ok(minutes) = parse_window_minutes(&raw) {
                prop_assert!(minutes <= MAX_WINDOW_MINUTES);
            }
        }
    }
}
