//! When a ballot takes votes: its start, its voting window and its status.

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Duration, OffsetDateTime, PrimitiveDateTime};

use super::validation::{Field, FieldError, messages};

/// Longest voting window: one year, in minutes.
pub const MAX_WINDOW_MINUTES: u32 = 525_600;

/// When voting opens, as the person creating the ballot chose it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartRequest {
    /// Open as soon as the ballot exists.
    Now,
    /// Open at a time given as text: RFC 3339, or the `YYYY-MM-DDTHH:MM[:SS]`
    /// a browser's `datetime-local` input sends, read as UTC.
    Scheduled(String),
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
    /// # Errors
    /// A [`Field::ScheduledStart`] error for a missing, malformed or past
    /// start; a [`Field::VotingWindow`] error for a window over a year.
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
                let ends_at = (window_minutes > 0)
                    .then(|| starts_at + Duration::minutes(i64::from(window_minutes)));
                Ok(Self { starts_at, ends_at })
            }
            _ => Err(errors),
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

    /// The status at `now`, given when (if ever) the owner closed it early.
    pub fn status_at(&self, now: OffsetDateTime, closed_at: Option<OffsetDateTime>) -> Status {
        let end = match (self.ends_at, closed_at) {
            (Some(end), Some(closed)) => Some(end.min(closed)),
            (end, closed) => end.or(closed),
        };
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
    if at <= now {
        return Err(FieldError::new(
            Field::ScheduledStart,
            messages::SCHEDULED_START_IN_PAST,
        ));
    }
    Ok(at)
}

fn parse_timestamp(text: &str) -> Option<OffsetDateTime> {
    if let Ok(at) = OffsetDateTime::parse(text, &Rfc3339) {
        return Some(at.to_offset(time::UtcOffset::UTC));
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
    let minutes = (seconds + 59) / 60;
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
        result.unwrap_err()[0].message()
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
    fn humanize_picks_the_largest_whole_unit() {
        assert_eq!(humanize(Duration::seconds(1)), "1 minute");
        assert_eq!(humanize(Duration::seconds(61)), "2 minutes");
        assert_eq!(humanize(Duration::minutes(60)), "1 hour");
        assert_eq!(humanize(Duration::seconds(59 * 60 + 59)), "1 hour");
        assert_eq!(humanize(Duration::hours(47)), "47 hours");
        assert_eq!(humanize(Duration::days(3)), "3 days");
    }
}
