//! The canonical model every feed is mapped into: records, identity numbers and code tables.
//!
//! Only what reconciliation needs is kept. Feed fields such as gestation weeks, birth weight,
//! ethnicity and street addresses are deliberately not part of the model, so they are never
//! stored (see docs/data-minimisation.md).

mod codes;
mod discrepancy;
mod id_number;
mod period;
mod records;

pub use codes::{division_prefix, Division, MaritalStatus, Sex};
pub use discrepancy::{Discrepancy, DiscrepancyKind, FieldDiff, Severity, SourceRef};
pub use id_number::{check_char, IdNumber, IdProblem};
pub use period::{fixed_date, Period, DATE_FORMATS};
pub use records::{
    BirthNotification, CertStatus, Feed, HukouEvent, HukouEventKind, MarriageKind,
    MarriageRegistration, MigrantChild, MigrantEvent, MigrantRecord, Party, Person, PersonStatus,
    Record, REGISTRY_COLUMNS,
};
