//! The `Date` header's value: IMF-fixdate (RFC 9110 5.6.7), e.g.
//! `Sun, 06 Nov 1994 08:49:37 GMT`, from seconds since the Unix epoch.
//!
//! An origin server with a clock MUST send Date (RFC 9110 6.6.1); one
//! without a reliable clock MUST NOT. The kernel reads the wall-clock time
//! at boot (the CMOS RTC) and says so through `NetConfig::boot_unix_secs`;
//! when it cannot, no Date is sent.

/// IMF-fixdate is always this long.
pub const LEN: usize = 29;
/// Seconds in a day (UTC, as POSIX time counts them: no leap seconds).
const DAY: u64 = 86_400;
/// 1970-01-01 was a Thursday: index 4 in `WEEKDAYS`.
const EPOCH_WEEKDAY: u64 = 4;
const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
/// The last second IMF-fixdate can show (9999-12-31T23:59:59Z): its year has four digits.
pub const MAX_SECS: u64 = 253_402_300_799;

/// An IMF-fixdate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpDate([u8; LEN]);

impl HttpDate {
    /// The date `secs` after 1970-01-01T00:00:00Z; `None` past year 9999.
    pub fn from_unix(secs: u64) -> Option<HttpDate> {
        if secs > MAX_SECS {
            return None;
        }
        let days = secs / DAY;
        let rem = secs % DAY;
        let (year, month, day) = civil_from_days(days);
        let weekday = WEEKDAYS[((days + EPOCH_WEEKDAY) % 7) as usize];
        let mut out = [0u8; LEN];
        let mut at = 0;
        let mut put = |bytes: &[u8]| {
            out[at..at + bytes.len()].copy_from_slice(bytes);
            at += bytes.len();
        };
        let two = |n: u64| [b'0' + (n / 10) as u8, b'0' + (n % 10) as u8];
        put(weekday.as_bytes());
        put(b", ");
        put(&two(day));
        put(b" ");
        put(MONTHS[(month - 1) as usize].as_bytes());
        put(b" ");
        put(&two(year / 100));
        put(&two(year % 100));
        put(b" ");
        put(&two(rem / 3600));
        put(b":");
        put(&two(rem / 60 % 60));
        put(b":");
        put(&two(rem % 60));
        put(b" GMT");
        Some(HttpDate(out))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // Built from ASCII only, above.
        core::str::from_utf8(&self.0).unwrap_or("")
    }
}

/// (year, month 1..=12, day 1..=31) of the day `days` after 1970-01-01, in
/// the proleptic Gregorian calendar (H. Hinnant's `civil_from_days`, for
/// days on or after the epoch): eras of 400 years, counted from March so
/// that the leap day falls at the end.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // 719_468 days from 0000-03-01 to 1970-01-01; an era is 146_097 days.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March = 0
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod test {
    use super::*;

    fn date(secs: u64) -> String {
        HttpDate::from_unix(secs).map(|d| d.as_str().into()).unwrap_or_default()
    }

    #[test]
    fn imf_fixdate_of_known_instants() {
        assert_eq!(date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        // RFC 9110 5.6.7's own example.
        assert_eq!(date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(date(1_000_000_000), "Sun, 09 Sep 2001 01:46:40 GMT");
        assert_eq!(date(4_102_444_799), "Thu, 31 Dec 2099 23:59:59 GMT");
        assert_eq!(date(MAX_SECS), "Fri, 31 Dec 9999 23:59:59 GMT");
        assert_eq!(HttpDate::from_unix(MAX_SECS + 1), None);
    }

    #[test]
    fn leap_years_and_their_days() {
        // 2000: divisible by 400, a leap year; 2100: by 100, not; 2024: by 4.
        assert_eq!(date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(date(951_868_800), "Wed, 01 Mar 2000 00:00:00 GMT");
        assert_eq!(date(1_709_164_800), "Thu, 29 Feb 2024 00:00:00 GMT");
        assert_eq!(date(1_735_603_200), "Tue, 31 Dec 2024 00:00:00 GMT"); // day 366
        assert_eq!(date(4_107_456_000), "Sun, 28 Feb 2100 00:00:00 GMT");
        assert_eq!(date(4_107_542_400), "Mon, 01 Mar 2100 00:00:00 GMT"); // the day after 28 Feb
        assert_eq!(date(1_677_542_400), "Tue, 28 Feb 2023 00:00:00 GMT");
        assert_eq!(date(1_677_628_800), "Wed, 01 Mar 2023 00:00:00 GMT");
    }

    #[test]
    fn every_day_for_three_centuries_follows_the_last() {
        let mut last = civil_from_days(0);
        for days in 1..(300 * 366) {
            let (y, m, d) = civil_from_days(days);
            let next_day = (y, m, d) == (last.0, last.1, last.2 + 1);
            let next_month = d == 1 && ((y, m) == (last.0, last.1 + 1) || (y, m, last.1) == (last.0 + 1, 1, 12));
            assert!(next_day || next_month, "{last:?} -> {:?}", (y, m, d));
            let month_len = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][(last.1 - 1) as usize]
                + u64::from(
                    last.1 == 2
                        && (last.0.is_multiple_of(4) && (!last.0.is_multiple_of(100) || last.0.is_multiple_of(400))),
                );
            assert!(!next_month || last.2 == month_len, "{last:?} ended early");
            last = (y, m, d);
        }
    }
}
