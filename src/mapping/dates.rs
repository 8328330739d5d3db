//! Reading the many date forms agencies send.

use chrono::{Duration, NaiveDate};

/// Formats tried in order when a mapping names none. `%m`/`%d` accept one or two digits.
pub fn default_formats() -> Vec<String> {
    crate::model::DATE_FORMATS.map(str::to_owned).to_vec()
}

/// Excel's day 0 in the 1900 date system, counting its phantom 1900-02-29.
const EXCEL_EPOCH: (i32, u32, u32) = (1899, 12, 30);

/// Parses `text` with the given formats; a bare number of up to 6 digits is an Excel serial.
/// A trailing time (`2026-10-03 08:15:00`, `2026-10-03T08:15:00+08:00`) is ignored.
pub fn parse_date(text: &str, formats: &[String]) -> Option<NaiveDate> {
    let text = text.trim();
    let date_part = text.split([' ', 'T']).next().unwrap_or(text);
    if !date_part.is_empty()
        && date_part.len() <= 6
        && date_part.bytes().all(|b| b.is_ascii_digit())
    {
        let serial: i64 = date_part.parse().ok()?;
        let (y, m, d) = EXCEL_EPOCH;
        return (1..=200_000)
            .contains(&serial)
            .then(|| NaiveDate::from_ymd_opt(y, m, d))?
            .map(|e| e + Duration::days(serial));
    }
    formats
        .iter()
        .find_map(|f| NaiveDate::parse_from_str(date_part, f).ok())
        .or_else(|| {
            formats
                .iter()
                .find_map(|f| NaiveDate::parse_from_str(text, f).ok())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spec_date_form_reads_the_same_day() {
        let want = NaiveDate::from_ymd_opt(2026, 10, 3);
        let formats = default_formats();
        for text in [
            "2026-10-03",
            "20261003",
            "2026/10/3",
            "2026.10.03",
            "2026年10月3日",
            "2026-10-03 00:00:00",
            "46298",
        ] {
            assert_eq!(parse_date(text, &formats), want, "{text}");
        }
    }

    #[test]
    fn unreadable_dates_are_none() {
        let formats = default_formats();
        for text in ["2026-13-03", "2026-02-30", "soon", "", "10/03/2026"] {
            assert_eq!(parse_date(text, &formats), None, "{text}");
        }
    }
}
