//! NIP (Nomor Induk Pegawai), the 18-digit civil-servant number every Wali
//! Data, operator and custodian has:
//!
//! ```text
//! 19850312 201001 1 004
//! |        |      | +-- serial (001-999)
//! |        |      +---- sex: 1 male, 2 female
//! |        +----------- appointment (TMT CPNS) year and month, YYYYMM
//! +-------------------- birth date, YYYYMMDD
//! ```
//!
//! The check is structural (a real date, a real month, ...): it catches
//! typos and swapped fields, not a number that belongs to someone else.

use std::fmt;

use chrono::{Datelike, NaiveDate};

/// A well-formed NIP, split into its parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nip {
    pub birth_date: NaiveDate,
    pub appointment_year: i32,
    pub appointment_month: u32,
    pub sex: Sex,
    pub serial: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sex {
    Male,
    Female,
}

/// Which part of a NIP is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NipPart {
    /// The whole number: length or non-digits.
    Whole,
    BirthDate,
    Appointment,
    Sex,
    Serial,
}

impl NipPart {
    /// Byte range of the part inside the 18 digits.
    pub fn range(self) -> std::ops::Range<usize> {
        match self {
            NipPart::Whole => 0..18,
            NipPart::BirthDate => 0..8,
            NipPart::Appointment => 8..14,
            NipPart::Sex => 14..15,
            NipPart::Serial => 15..18,
        }
    }
}

/// Why a NIP was refused, naming the part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NipError {
    pub part: NipPart,
    /// Byte offset of the offending character or part in the input.
    pub offset: usize,
    pub message: String,
}

impl fmt::Display for NipError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for NipError {}

/// Checks `text` as a NIP and returns its parts, or the first part that
/// is wrong.
pub fn parse(text: &str) -> Result<Nip, NipError> {
    check_shape(text)?;
    let birth_date = birth_date(text)?;
    let (appointment_year, appointment_month) = appointment(text, birth_date)?;
    let sex = sex(text)?;
    let serial = serial(text)?;
    Ok(Nip {
        birth_date,
        appointment_year,
        appointment_month,
        sex,
        serial,
    })
}

fn error(part: NipPart, offset: usize, message: String) -> NipError {
    NipError {
        part,
        offset,
        message,
    }
}

fn check_shape(text: &str) -> Result<(), NipError> {
    if let Some((i, c)) = text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        let hint = if c.is_whitespace() || c == '.' || c == '-' {
            format!(
                " (write the 18 digits without separators: `{}`)",
                text.chars()
                    .filter(char::is_ascii_digit)
                    .collect::<String>()
            )
        } else {
            String::new()
        };
        return Err(error(
            NipPart::Whole,
            i,
            format!("NIP `{text}` has `{c}` where only digits belong{hint}"),
        ));
    }
    if text.len() != 18 {
        return Err(error(
            NipPart::Whole,
            0,
            format!(
                "NIP `{text}` has {} digits; a NIP has 18: birth date YYYYMMDD, appointment YYYYMM, sex 1 or 2, serial 001-999",
                text.len()
            ),
        ));
    }
    Ok(())
}

/// The number in `text[range]`; only called after `check_shape`, so the
/// slice is ASCII digits inside the 18.
fn number(text: &str, range: std::ops::Range<usize>) -> u32 {
    text.get(range).and_then(|d| d.parse().ok()).unwrap_or(0)
}

fn birth_date(text: &str) -> Result<NaiveDate, NipError> {
    let digits = &text[NipPart::BirthDate.range()];
    let (y, m, d) = (number(text, 0..4), number(text, 4..6), number(text, 6..8));
    NaiveDate::from_ymd_opt(y as i32, m, d)
        .filter(|date| date.year() >= 1900)
        .ok_or_else(|| {
            error(
                NipPart::BirthDate,
                0,
                format!(
                    "NIP `{text}`: birth date `{digits}` (digits 1-8, YYYYMMDD) is not a real date"
                ),
            )
        })
}

fn appointment(text: &str, birth: NaiveDate) -> Result<(i32, u32), NipError> {
    let digits = &text[NipPart::Appointment.range()];
    let (year, month) = (number(text, 8..12) as i32, number(text, 12..14));
    let start = NipPart::Appointment.range().start;
    if !(1..=12).contains(&month) {
        return Err(error(
            NipPart::Appointment,
            start + 4,
            format!(
                "NIP `{text}`: appointment `{digits}` (digits 9-14, YYYYMM) has month {month:02}, which does not exist"
            ),
        ));
    }
    let birth_year = birth.year();
    if year < birth_year {
        return Err(error(
            NipPart::Appointment,
            start,
            format!(
                "NIP `{text}`: appointment year {year} (digits 9-12) is before the birth year {birth_year}: are the birth date and appointment swapped?"
            ),
        ));
    }
    Ok((year, month))
}

fn sex(text: &str) -> Result<Sex, NipError> {
    match &text[NipPart::Sex.range()] {
        "1" => Ok(Sex::Male),
        "2" => Ok(Sex::Female),
        other => Err(error(
            NipPart::Sex,
            NipPart::Sex.range().start,
            format!(
                "NIP `{text}`: sex digit (digit 15) is `{other}`; it is 1 (male) or 2 (female)"
            ),
        )),
    }
}

fn serial(text: &str) -> Result<u16, NipError> {
    match number(text, NipPart::Serial.range()) {
        0 => Err(error(
            NipPart::Serial,
            NipPart::Serial.range().start,
            format!("NIP `{text}`: serial (digits 16-18) is 000; serials start at 001"),
        )),
        n => Ok(n as u16),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(nip: &str) -> NipPart {
        parse(nip).expect_err(nip).part
    }

    #[test]
    fn well_formed_nip_is_split_into_parts() {
        let nip = parse("198503122010011004").unwrap();
        assert_eq!(
            nip.birth_date,
            NaiveDate::from_ymd_opt(1985, 3, 12).unwrap()
        );
        assert_eq!((nip.appointment_year, nip.appointment_month), (2010, 1));
        assert_eq!(nip.sex, Sex::Male);
        assert_eq!(nip.serial, 4);
        assert_eq!(parse("197602292001122001").unwrap().sex, Sex::Female);
    }

    #[test]
    fn length_and_characters() {
        let e = parse("19850312201001100").unwrap_err();
        assert_eq!(e.part, NipPart::Whole);
        assert!(e.message.contains("17 digits"), "{e}");
        let e = parse("19850312 201001 1 004").unwrap_err();
        assert_eq!(e.offset, 8);
        assert!(e.message.contains("`198503122010011004`"), "{e}");
        assert_eq!(part("1985031220100110O4"), NipPart::Whole);
        assert_eq!(part(""), NipPart::Whole);
    }

    #[test]
    fn birth_date_must_be_real() {
        // 30 February, month 13, 1977 was not a leap year, year 1850.
        for nip in [
            "198502302010011004",
            "198513012010011004",
            "197702292001121001",
            "185003122010011004",
        ] {
            let e = parse(nip).unwrap_err();
            assert_eq!(e.part, NipPart::BirthDate, "{nip}");
            assert!(e.message.contains("birth date"), "{e}");
        }
    }

    #[test]
    fn appointment_month_and_year() {
        let e = parse("198503122010131004").unwrap_err();
        assert_eq!((e.part, e.offset), (NipPart::Appointment, 12));
        assert!(e.message.contains("month 13"), "{e}");
        assert_eq!(part("198503122010001004"), NipPart::Appointment);
        let e = parse("198503121984011004").unwrap_err();
        assert_eq!((e.part, e.offset), (NipPart::Appointment, 8));
        assert!(e.message.contains("before the birth year"), "{e}");
    }

    #[test]
    fn sex_digit_and_serial() {
        let e = parse("198503122010013004").unwrap_err();
        assert_eq!((e.part, e.offset), (NipPart::Sex, 14));
        assert_eq!(part("198503122010010004"), NipPart::Sex);
        let e = parse("198503122010011000").unwrap_err();
        assert_eq!((e.part, e.offset), (NipPart::Serial, 15));
    }
}
