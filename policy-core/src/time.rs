//! RFC 3339 date-time syntax, checked without a clock or a date library.

/// Whether `s` is an RFC 3339 `date-time`, e.g. `2026-11-27T10:15:00Z`.
pub fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<u32> {
        let digits = b.get(range)?;
        digits.iter().try_fold(0u32, |n, &d| {
            d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
        })
    };
    let sep = |i: usize, allowed: &[u8]| b.get(i).is_some_and(|c| allowed.contains(c));
    let (Some(year), Some(month), Some(day), Some(hour), Some(minute), Some(second)) = (
        num(0..4),
        num(5..7),
        num(8..10),
        num(11..13),
        num(14..16),
        num(17..19),
    ) else {
        return false;
    };
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt") && sep(13, b":") && sep(16, b":")) {
        return false;
    }
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    if day == 0 || day > days || hour > 23 || minute > 59 || second > 60 {
        return false;
    }
    let mut i = 19;
    if sep(i, b".") {
        let digits = b
            .iter()
            .skip(i + 1)
            .take_while(|c| c.is_ascii_digit())
            .count();
        if digits == 0 {
            return false;
        }
        i += 1 + digits;
    }
    match b.get(i) {
        Some(b'Z' | b'z') => i + 1 == b.len(),
        Some(b'+' | b'-') => {
            i + 6 == b.len()
                && sep(i + 3, b":")
                && num(i + 1..i + 3).is_some_and(|h| h <= 23)
                && num(i + 4..i + 6).is_some_and(|m| m <= 59)
        }
        _ => false,
    }
}

/// The instant an RFC 3339 `date-time` names, in milliseconds since the Unix
/// epoch (digits past the millisecond dropped, a leap second read as the
/// second before it); `None` when `s` is not RFC 3339.
pub fn unix_ms(s: &str) -> Option<i64> {
    if !is_rfc3339(s) {
        return None;
    }
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> i64 {
        b.iter()
            .skip(from)
            .take(len)
            .fold(0, |n, &d| n * 10 + i64::from(d - b'0'))
    };
    let (year, month, day) = (num(0, 4), num(5, 2), num(8, 2));
    let seconds = num(11, 2) * 3600 + num(14, 2) * 60 + num(17, 2).min(59);
    let mut i = 19;
    let mut millis = 0;
    if b.get(i) == Some(&b'.') {
        let digits = b
            .iter()
            .skip(i + 1)
            .take_while(|c| c.is_ascii_digit())
            .count();
        for k in 0..3 {
            millis = millis * 10 + if k < digits { num(i + 1 + k, 1) } else { 0 };
        }
        i += 1 + digits;
    }
    let offset = match b.get(i) {
        Some(b'+') => num(i + 1, 2) * 3600 + num(i + 4, 2) * 60,
        Some(b'-') => -(num(i + 1, 2) * 3600 + num(i + 4, 2) * 60),
        _ => 0,
    };
    let days = days_from_civil(year, month, day);
    Some(((days * 86_400 + seconds - offset) * 1000) + millis)
}

/// The instant `seconds` after the RFC 3339 date-time `time`, in UTC as
/// `YYYY-MM-DDTHH:MM:SSZ` (SPEC §4 step 3a): fractions of a second dropped, a
/// leap second read as the second before it. `None` when `time` is not RFC
/// 3339 or the result is not in years 0000 to 9999.
pub fn after(time: &str, seconds: u32) -> Option<String> {
    format_utc(unix_ms(time)?.div_euclid(1000) + i64::from(seconds))
}

/// An instant in seconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ`;
/// `None` outside years 0000 to 9999.
pub fn format_utc(at: i64) -> Option<String> {
    let (days, second) = (at.div_euclid(86_400), at.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    if !(0..=9999).contains(&year) {
        return None;
    }
    let (hour, minute, second) = (second / 3600, second / 60 % 60, second % 60);
    Some(format!(
        "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z"
    ))
}

/// The proleptic Gregorian date `days` after 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::{after, civil_from_days, days_from_civil, is_rfc3339, unix_ms};

    #[test]
    fn after_writes_utc_seconds() {
        let cases = [
            ("2026-11-27T10:15:00Z", 14_400, "2026-11-27T14:15:00Z"),
            ("2026-11-27T10:15:00.999Z", 0, "2026-11-27T10:15:00Z"),
            ("2026-11-27t12:15:00.5+02:00", 1, "2026-11-27T10:15:01Z"),
            ("2026-11-27T22:00:00-03:00", 0, "2026-11-28T01:00:00Z"),
            ("2026-12-31T23:59:59z", 1, "2027-01-01T00:00:00Z"),
            ("2024-02-28T12:00:00Z", 86_400, "2024-02-29T12:00:00Z"),
            ("2100-02-28T12:00:00Z", 86_400, "2100-03-01T12:00:00Z"),
            ("2026-06-30T23:59:60Z", 1, "2026-07-01T00:00:00Z"),
            ("1969-12-31T23:59:59.5Z", 1, "1970-01-01T00:00:00Z"),
            ("9999-12-31T23:59:58Z", 1, "9999-12-31T23:59:59Z"),
            ("0000-01-01T00:00:00Z", 0, "0000-01-01T00:00:00Z"),
            ("2026-11-27T10:15:00Z", 2_592_000, "2026-12-27T10:15:00Z"),
        ];
        for (time, seconds, due) in cases {
            assert_eq!(
                after(time, seconds).as_deref(),
                Some(due),
                "{time} + {seconds}"
            );
        }
    }

    #[test]
    fn after_refuses_what_cannot_be_written() {
        assert_eq!(after("9999-12-31T23:59:59Z", 1), None);
        assert_eq!(after("9999-12-31T23:00:00-01:00", 0), None);
        assert_eq!(after("0000-01-01T00:00:00+00:01", 0), None);
        assert_eq!(after("not a time", 0), None);
    }

    #[test]
    fn civil_days_round_trip() {
        for days in (-800_000..3_000_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn unix_ms_reads_the_instant() {
        assert_eq!(unix_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(unix_ms("2026-11-27T10:15:00Z"), Some(1_795_774_500_000));
        assert_eq!(
            unix_ms("2026-11-27T10:15:00.1239Z"),
            Some(1_795_774_500_123)
        );
        assert_eq!(
            unix_ms("2026-11-27T12:15:00+02:00"),
            Some(1_795_774_500_000)
        );
        assert_eq!(
            unix_ms("2026-11-27T09:15:00-01:00"),
            Some(1_795_774_500_000)
        );
        assert_eq!(unix_ms("1969-12-31T23:59:59Z"), Some(-1000));
        assert_eq!(unix_ms("2024-02-29T00:00:00Z"), Some(1_709_164_800_000));
        assert_eq!(
            unix_ms("2026-12-31T23:59:60Z"),
            unix_ms("2026-12-31T23:59:59Z")
        );
        assert_eq!(unix_ms("2026-11-27"), None);
    }

    #[test]
    fn accepts_rfc3339() {
        for s in [
            "2026-11-27T10:15:00Z",
            "2024-02-29t00:00:00.123456+05:30",
            "2026-12-31T23:59:60-00:00",
        ] {
            assert!(is_rfc3339(s), "{s}");
        }
    }

    #[test]
    fn rejects_near_misses() {
        for s in [
            "",
            "2026-11-27",
            "2026-11-27 10:15:00Z",
            "2026-11-27T10:15:00",
            "2025-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-11-27T24:00:00Z",
            "2026-11-27T10:15:00.Z",
            "2026-11-27T10:15:00+0530",
            "2026-11-27T10:15:00Zjunk",
            "２０２６-11-27T10:15:00Z",
        ] {
            assert!(!is_rfc3339(s), "{s}");
        }
    }
}
