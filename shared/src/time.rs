//! Calendar dates without a date crate: policy expiry dates are days, and "today" is the UTC day
//! of an epoch second.

use std::fmt;

/// A UTC calendar day, `YYYY-MM-DD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    pub year: i32,
    pub month: u8,
    pub day: u8,
}

impl Date {
    /// The UTC day of `epoch` seconds.
    pub fn from_epoch(epoch: u64) -> Date {
        // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
        let z = (epoch / 86_400) as i64 + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
        let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
        Date { year, month, day }
    }

    /// Parses `YYYY-MM-DD`, checking the day exists.
    pub fn parse(s: &str) -> Result<Date, String> {
        let bad = || format!("{s:?} is not a date like 2026-12-31");
        let mut parts = s.splitn(3, '-');
        let (Some(y), Some(m), Some(d)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad());
        };
        if y.len() != 4 || m.len() != 2 || d.len() != 2 {
            return Err(bad());
        }
        let year: i32 = y.parse().map_err(|_| bad())?;
        let month: u8 = m.parse().map_err(|_| bad())?;
        let day: u8 = d.parse().map_err(|_| bad())?;
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        let days = match month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if leap => 29,
            2 => 28,
            _ => return Err(bad()),
        };
        if day == 0 || day > days {
            return Err(bad());
        }
        Ok(Date { year, month, day })
    }
}

/// `2026-11-23T04:12:00Z`: an epoch second as RFC 3339, for event details people read.
pub fn rfc3339(epoch: u64) -> String {
    let rem = epoch % 86_400;
    format!(
        "{}T{:02}:{:02}:{:02}Z",
        Date::from_epoch(epoch),
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

/// Epoch seconds of an RFC 3339 UTC time (`2026-11-23T04:12:00Z`, fractions ignored), as
/// EventBridge writes an event's `time`.
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let (date, time) = s.split_once('T')?;
    let date = Date::parse(date).ok()?;
    let time = time.strip_suffix('Z')?;
    epoch(date, time, 0)
}

/// Epoch seconds of a timestamp with a `Z` or numeric offset, as CloudWatch writes alarm state
/// times (`2019-10-02T17:04:40.989+0000`). Stray spaces are ignored: some published samples
/// have them, and a timestamp never means anything by one.
pub fn parse_timestamp(s: &str) -> Option<u64> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    let (date, time) = s.split_once('T')?;
    let date = Date::parse(date).ok()?;
    if let Some(time) = time.strip_suffix('Z') {
        return epoch(date, time, 0);
    }
    let at = time.rfind(['+', '-'])?;
    let (time, offset) = time.split_at(at);
    let sign: i64 = if offset.starts_with('-') { -1 } else { 1 };
    let digits: String = offset[1..].chars().filter(|c| *c != ':').collect();
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (oh, om): (i64, i64) = (digits[..2].parse().ok()?, digits[2..].parse().ok()?);
    if oh > 23 || om > 59 {
        return None;
    }
    epoch(date, time, sign * (oh * 3_600 + om * 60))
}

/// `hh:mm:ss[.fff]` on `date`, at `offset` seconds east of UTC.
fn epoch(date: Date, time: &str, offset: i64) -> Option<u64> {
    let time = time.split('.').next()?;
    let mut hms = time.splitn(3, ':').map(|p| p.parse::<u64>().ok());
    let (h, m, sec) = (hms.next()??, hms.next()??, hms.next()??);
    if h > 23 || m > 59 || sec > 60 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let (y, mo, d) = (
        i64::from(date.year) - i64::from(date.month <= 2),
        i64::from(date.month),
        i64::from(date.day),
    );
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if mo > 2 { mo - 3 } else { mo + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let local = i64::try_from(h * 3_600 + m * 60 + sec).ok()?;
    u64::try_from(days * 86_400 + local - offset).ok()
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloudwatch_timestamps_read_with_their_offsets() {
        let utc = parse_rfc3339("2019-10-02T17:04:40Z").unwrap();
        assert_eq!(parse_timestamp("2019-10-02T17:04:40.989+0000"), Some(utc));
        assert_eq!(parse_timestamp("2019-10-02T17:04:40Z"), Some(utc));
        assert_eq!(parse_timestamp("2019-10-02T19:04:40+02:00"), Some(utc));
        assert_eq!(parse_timestamp("2019-10-02T16:04:40.1-0100"), Some(utc));
        // As in the published Lambda alarm-action samples.
        assert_eq!(
            parse_timestamp("2023-08-04T12: 36: 15.490+0000"),
            parse_rfc3339("2023-08-04T12:36:15Z")
        );
        for bad in [
            "2019-10-02T17:04:40",
            "2019-10-02T17:04:40+25:00",
            "yesterday",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
    }

    #[test]
    fn days_of_epoch_seconds() {
        assert_eq!(Date::from_epoch(0).to_string(), "1970-01-01");
        assert_eq!(Date::from_epoch(951_782_400).to_string(), "2000-02-29");
        assert_eq!(Date::from_epoch(1_798_761_599).to_string(), "2026-12-31");
        assert_eq!(Date::from_epoch(1_798_761_600).to_string(), "2027-01-01");
        assert_eq!(rfc3339(1_798_761_599), "2026-12-31T23:59:59Z");
        for t in [0, 951_782_400, 1_798_761_599, 1_504_282_349] {
            assert_eq!(parse_rfc3339(&rfc3339(t)), Some(t));
        }
        assert_eq!(
            parse_rfc3339("2019-10-30T21:32:27.123Z"),
            Some(1_572_471_147)
        );
        assert_eq!(parse_rfc3339("2019-10-30 21:32:27"), None);
    }

    #[test]
    fn parsing_checks_the_day_exists() {
        assert_eq!(Date::parse("2028-02-29").unwrap().to_string(), "2028-02-29");
        for bad in [
            "2027-02-29",
            "2026-13-01",
            "2026-04-31",
            "26-01-01",
            "2026-1-1",
            "soon",
        ] {
            assert!(Date::parse(bad).is_err(), "{bad}");
        }
        assert!(Date::parse("2026-01-31").unwrap() < Date::parse("2026-02-01").unwrap());
    }
}
