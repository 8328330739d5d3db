//! Building canonical records from mapped field values, with per-field errors.

use std::collections::BTreeMap;
use std::str::FromStr;

use chrono::NaiveDate;

use super::{dates, FieldError, ListRule};
use crate::model::*;

/// The canonical fields each feed accepts; a mapping naming any other field is refused.
fn known_fields(feed: Feed) -> &'static [&'static str] {
    match feed {
        Feed::Registry => &REGISTRY_COLUMNS,
        Feed::HealthBirths => &[
            "cert_no",
            "status",
            "child_name",
            "child_sex",
            "birth_date",
            "birth_time",
            "birth_division",
            "hospital_code",
            "hospital_name",
            "mother_name",
            "mother_id",
            "mother_division",
            "father_name",
            "father_id",
            "updated_at",
        ],
        Feed::PoliceHukou => &[
            "event",
            "id_number",
            "name",
            "sex",
            "birth_date",
            "hukou_division",
            "cert_no",
            "father_name",
            "father_id",
            "mother_name",
            "mother_id",
            "reg_date",
            "office",
        ],
        Feed::CivilMarriages => &[
            "reg_no",
            "kind",
            "reg_date",
            "office",
            "husband_name",
            "husband_id",
            "husband_birth_date",
            "wife_name",
            "wife_id",
            "wife_birth_date",
        ],
        Feed::ExchangeMigrants => &[
            "message_id",
            "from_region",
            "to_region",
            "id_number",
            "name",
            "sex",
            "birth_date",
            "marital_status",
            "hukou_division",
            "residence_division",
            "event",
            "event_date",
        ],
    }
}

const CHILD_FIELDS: &[&str] = &["name", "sex", "birth_date", "id_number"];

pub(super) fn check_fields<'a>(
    feed: Feed,
    fields: impl Iterator<Item = &'a String>,
    lists: &BTreeMap<String, ListRule>,
) -> Result<(), String> {
    let known = known_fields(feed);
    for f in fields {
        if !known.contains(&f.as_str()) {
            return Err(format!(
                "feed {feed} has no canonical field '{f}' (fields: {})",
                known.join(", ")
            ));
        }
    }
    for (name, list) in lists {
        if feed != Feed::ExchangeMigrants || name != "children" {
            return Err(format!("feed {feed} has no list '{name}'"));
        }
        for f in list.fields.keys() {
            if !CHILD_FIELDS.contains(&f.as_str()) {
                return Err(format!(
                    "children have no field '{f}' (fields: {})",
                    CHILD_FIELDS.join(", ")
                ));
            }
        }
    }
    Ok(())
}

/// Mapped values of one record, read with typed accessors that name the field on failure.
pub(super) struct Fields<'a> {
    values: &'a BTreeMap<String, String>,
    lists: &'a BTreeMap<String, Vec<BTreeMap<String, String>>>,
    date_formats: &'a [String],
}

impl<'a> Fields<'a> {
    pub(super) fn new(
        values: &'a BTreeMap<String, String>,
        lists: &'a BTreeMap<String, Vec<BTreeMap<String, String>>>,
        date_formats: &'a [String],
    ) -> Self {
        Fields {
            values,
            lists,
            date_formats,
        }
    }

    fn text(&self, f: &str) -> Option<String> {
        self.values.get(f).cloned()
    }

    fn required(&self, f: &str) -> Result<String, FieldError> {
        self.text(f).ok_or_else(|| FieldError::new(f, "missing"))
    }

    fn date(&self, f: &str) -> Result<Option<NaiveDate>, FieldError> {
        match self.values.get(f) {
            None => Ok(None),
            Some(v) => dates::parse_date(v, self.date_formats)
                .map(Some)
                .ok_or_else(|| FieldError::new(f, format!("cannot read date '{v}'"))),
        }
    }

    fn required_date(&self, f: &str) -> Result<NaiveDate, FieldError> {
        self.date(f)?.ok_or_else(|| FieldError::new(f, "missing"))
    }

    fn id(&self, f: &str) -> Option<IdNumber> {
        self.values.get(f).and_then(|v| IdNumber::parse(v))
    }

    fn required_id(&self, f: &str) -> Result<IdNumber, FieldError> {
        self.id(f).ok_or_else(|| FieldError::new(f, "missing"))
    }

    fn code<T: FromStr<Err = String>>(&self, f: &str) -> Result<Option<T>, FieldError> {
        self.values
            .get(f)
            .map(|v| v.parse::<T>().map_err(|e| FieldError::new(f, e)))
            .transpose()
    }

    fn sex(&self, f: &str) -> Result<Sex, FieldError> {
        Ok(self.code(f)?.unwrap_or(Sex::Unknown))
    }

    fn labelled<T>(
        &self,
        f: &str,
        parse: impl Fn(&str) -> Option<T>,
        allowed: &str,
    ) -> Result<T, FieldError> {
        let v = self.required(f)?;
        parse(&v).ok_or_else(|| FieldError::new(f, format!("'{v}' is not one of {allowed}")))
    }
}

pub(super) fn build(feed: Feed, f: &Fields) -> Result<Record, FieldError> {
    Ok(match feed {
        Feed::Registry => Record::Person(Person {
            person_key: f.required("person_key")?,
            id_number: f.id("id_number"),
            name: f.required("name")?,
            sex: f.sex("sex")?,
            birth_date: f.date("birth_date")?,
            hukou_division: f.code("hukou_division")?,
            residence_division: f.code("residence_division")?,
            marital_status: f.code("marital_status")?,
            spouse_id_number: f.id("spouse_id_number"),
            mother_id_number: f.id("mother_id_number"),
            father_id_number: f.id("father_id_number"),
            status: f.labelled(
                "status",
                |v| match v {
                    "resident" => Some(PersonStatus::Resident),
                    "moved_out" => Some(PersonStatus::MovedOut),
                    "deceased" => Some(PersonStatus::Deceased),
                    _ => None,
                },
                "resident, moved_out, deceased",
            )?,
            updated_at: f.text("updated_at"),
        }),
        Feed::HealthBirths => Record::Birth(BirthNotification {
            cert_no: f.required("cert_no")?,
            status: f.labelled(
                "status",
                |v| match v {
                    "issued" => Some(CertStatus::Issued),
                    "reissued" => Some(CertStatus::Reissued),
                    "void" => Some(CertStatus::Void),
                    _ => None,
                },
                "issued, reissued, void",
            )?,
            child_name: f.text("child_name").unwrap_or_default(),
            child_sex: f.sex("child_sex")?,
            birth_date: f.required_date("birth_date")?,
            birth_time: f.text("birth_time"),
            birth_division: f.code("birth_division")?,
            hospital_code: f.text("hospital_code"),
            hospital_name: f.text("hospital_name"),
            mother_name: f.text("mother_name").unwrap_or_default(),
            mother_id: f.id("mother_id"),
            mother_division: f.code("mother_division")?,
            father_name: f.text("father_name"),
            father_id: f.id("father_id"),
            updated_at: f.text("updated_at"),
        }),
        Feed::PoliceHukou => Record::Hukou(HukouEvent {
            event: f.labelled(
                "event",
                HukouEventKind::from_label,
                "出生登记, 迁入, 迁出, 死亡注销, 变更更正",
            )?,
            id_number: f.required_id("id_number")?,
            name: f.text("name").unwrap_or_default(),
            sex: f.sex("sex")?,
            birth_date: f.date("birth_date")?,
            hukou_division: f.code("hukou_division")?,
            cert_no: f.text("cert_no"),
            father_name: f.text("father_name"),
            father_id: f.id("father_id"),
            mother_name: f.text("mother_name"),
            mother_id: f.id("mother_id"),
            reg_date: f.required_date("reg_date")?,
            office: f.text("office"),
        }),
        Feed::CivilMarriages => Record::Marriage(MarriageRegistration {
            reg_no: f.required("reg_no")?,
            kind: f.labelled("kind", MarriageKind::from_label, "结婚, 离婚, 补领")?,
            reg_date: f.required_date("reg_date")?,
            office: f.code("office")?,
            husband: Party {
                name: f.text("husband_name").unwrap_or_default(),
                id_number: f.id("husband_id"),
                birth_date: f.date("husband_birth_date")?,
            },
            wife: Party {
                name: f.text("wife_name").unwrap_or_default(),
                id_number: f.id("wife_id"),
                birth_date: f.date("wife_birth_date")?,
            },
        }),
        Feed::ExchangeMigrants => {
            let mut children = Vec::new();
            for (i, child) in f.lists.get("children").into_iter().flatten().enumerate() {
                let cf = Fields::new(child, f.lists, f.date_formats);
                let at =
                    |e: FieldError| FieldError::new(format!("children[{i}].{}", e.field), e.reason);
                children.push(MigrantChild {
                    name: cf.text("name").unwrap_or_default(),
                    sex: cf.sex("sex").map_err(at)?,
                    birth_date: cf.date("birth_date").map_err(at)?,
                    id_number: cf.id("id_number"),
                });
            }
            Record::Migrant(MigrantRecord {
                message_id: f.text("message_id"),
                from_region: f.code("from_region")?,
                to_region: f.code("to_region")?,
                id_number: f.required_id("id_number")?,
                name: f.text("name").unwrap_or_default(),
                sex: f.sex("sex")?,
                birth_date: f.date("birth_date")?,
                marital_status: f.code("marital_status")?,
                hukou_division: f.code("hukou_division")?,
                residence_division: f.code("residence_division")?,
                event: f.labelled(
                    "event",
                    |v| match v {
                        "inflow" => Some(MigrantEvent::Inflow),
                        "outflow" => Some(MigrantEvent::Outflow),
                        "return" => Some(MigrantEvent::Return),
                        _ => None,
                    },
                    "inflow, outflow, return",
                )?,
                event_date: f.required_date("event_date")?,
                children,
            })
        }
    })
}
