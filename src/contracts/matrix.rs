//! `contracts/authorization-matrix.toml`: for every operation and principal class, whether the call is allowed or
//! which refusal it must get, plus the two-person and mass-assignment cases. The matrix suite runs every cell
//! against a target; the contract tests prove every cell equals `conform_reference::authz::authorize`.

use std::fmt;

use conform_reference::authz::PrincipalClass;
use conform_reference::ops::{OperationKind, UnknownOperation};
use conform_reference::refusal::Refusal;
use serde::Deserialize;
use serde::de::{self, Deserializer, Unexpected, Visitor};

/// The authorization matrix.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Matrix {
    /// The `[[operation]]` rows, one per abstract operation, in the order of `OperationKind::ALL`.
    pub operation: Vec<MatrixRow>,
    /// The `[[two_person]]` cases (AZ-7): operations a single admin may not complete alone.
    pub two_person: Vec<TwoPersonCase>,
    /// The `[[mass_assignment]]` cases (AZ-8): fields a caller must not be able to set.
    pub mass_assignment: Vec<MassAssignmentCase>,
}

/// How an operation is reached, which decides the driver that runs its row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// An HTTP route of `contracts/openapi.yaml`.
    Rest,
    /// A Socket.IO event of `contracts/realtime.toml`.
    Socketio,
}

/// What one cell of the matrix expects: the call goes through, or it is refused with exactly this refusal.
///
/// Typed at parse time, so a misspelled cell is an error naming the file, the line and the column rather than a
/// string that never matches what a target answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cell {
    /// `allow`: the call succeeds (for `filtered` rows, succeeds with only what the caller may see).
    Allow,
    /// A refusal's wire code: the call must be refused with it, and change nothing.
    Refuse(Refusal),
}

impl Cell {
    /// The word the matrix file uses: `allow` or the refusal's wire code.
    pub const fn code(self) -> &'static str {
        match self {
            Cell::Allow => "allow",
            Cell::Refuse(refusal) => refusal.code(),
        }
    }

    /// The cell a word of the matrix file stands for, if it is `allow` or a refusal's wire code.
    pub fn from_code(code: &str) -> Option<Cell> {
        if code == "allow" { Some(Cell::Allow) } else { Refusal::from_code(code).map(Cell::Refuse) }
    }

    /// Whether the call is expected to go through.
    pub const fn is_allow(self) -> bool {
        matches!(self, Cell::Allow)
    }

    /// The expected refusal, if the call is expected to be refused.
    pub const fn refusal(self) -> Option<Refusal> {
        match self {
            Cell::Allow => None,
            Cell::Refuse(refusal) => Some(refusal),
        }
    }

    /// The cell in the shape `conform_reference::authz::authorize` answers, for comparing the two.
    pub const fn as_result(self) -> Result<(), Refusal> {
        match self {
            Cell::Allow => Ok(()),
            Cell::Refuse(refusal) => Err(refusal),
        }
    }
}

impl From<Result<(), Refusal>> for Cell {
    fn from(result: Result<(), Refusal>) -> Cell {
        match result {
            Ok(()) => Cell::Allow,
            Err(refusal) => Cell::Refuse(refusal),
        }
    }
}

impl fmt::Display for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Cell {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Cell, D::Error> {
        struct CellVisitor;

        impl Visitor<'_> for CellVisitor {
            type Value = Cell;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"allow\" or a refusal code of conform_reference::refusal::Refusal (e.g. \"not_found\")")
            }

            fn visit_str<E: de::Error>(self, code: &str) -> Result<Cell, E> {
                Cell::from_code(code).ok_or_else(|| E::invalid_value(Unexpected::Str(code), &self))
            }
        }

        deserializer.deserialize_str(CellVisitor)
    }
}

/// One `[[operation]]` row: an operation called by each principal class.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatrixRow {
    /// The operation's name (`OperationKind::name`). A string, not an `OperationKind`, so that an unknown name is
    /// reported by the contract tests together with every other row problem.
    pub name: String,
    /// Which driver runs the row.
    pub transport: Transport,
    /// Whether the operation names one escrow; must equal `OperationKind::targets_escrow`.
    pub escrow: bool,
    /// For escrow operations, the state in which the rightful caller succeeds, so a refusal is due to
    /// authorization alone.
    pub state: Option<String>,
    /// For list operations: `allow` means "allowed, filtered to what the caller may see" (AZ-4).
    #[serde(default)]
    pub filtered: bool,
    /// No session.
    pub anonymous: Cell,
    /// A signed-in user who is neither buyer nor seller of the escrow.
    pub stranger: Cell,
    /// The escrow's buyer.
    pub buyer: Cell,
    /// The escrow's seller.
    pub seller: Cell,
    /// Read-only staff.
    pub support: Cell,
    /// An admin without a valid step-up.
    pub admin: Cell,
    /// An admin who stepped up less than 5 minutes ago.
    pub admin_stepped_up: Cell,
    /// The rules this row's cells prove.
    pub rules: Vec<String>,
    /// The threats they guard against.
    pub threats: Vec<String>,
    /// What a reader of a failure needs to know about the row (e.g. what `allow` assumes).
    pub note: Option<String>,
}

impl MatrixRow {
    /// The cell of one principal class; exhaustive, so a new class is a compile error here.
    pub fn cell(&self, class: PrincipalClass) -> Cell {
        match class {
            PrincipalClass::Anonymous => self.anonymous,
            PrincipalClass::Stranger => self.stranger,
            PrincipalClass::Buyer => self.buyer,
            PrincipalClass::Seller => self.seller,
            PrincipalClass::Support => self.support,
            PrincipalClass::Admin => self.admin,
            PrincipalClass::AdminSteppedUp => self.admin_stepped_up,
        }
    }

    /// The row's operation; an error if the name is not an `OperationKind`.
    pub fn operation(&self) -> Result<OperationKind, UnknownOperation> {
        OperationKind::parse(&self.name)
    }
}

/// One `[[two_person]]` case (AZ-7): an admin operation that, under `condition`, needs a second admin's approval.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwoPersonCase {
    /// The case's id, for reports.
    pub id: String,
    /// The admin operation that asks for approval.
    pub operation: String,
    /// The escrow state the case runs in.
    pub state: Option<String>,
    /// What makes the operation need two people (e.g. an amount over the high-risk threshold).
    pub condition: String,
    /// The operation the second admin calls (`approve_pending`).
    pub approve_operation: String,
    /// Status of the first admin's call: 202, since nothing may happen yet.
    pub first_call_status: u16,
    /// What the first call answers (`pending_approval`).
    pub first_call_outcome: String,
    /// Status when the same admin tries to approve.
    pub same_admin_status: u16,
    /// Refusal code when the same admin tries to approve (`same_approver`).
    pub same_admin_error: String,
    /// Status when a second admin approves.
    pub second_admin_status: u16,
    /// What the second admin's approval answers (`executed`).
    pub second_admin_outcome: String,
    /// Status of an approval after the pending request became void.
    pub void_status: u16,
    /// Refusal code of an approval after the pending request became void.
    pub void_error: String,
    /// The rules the case proves.
    pub rules: Vec<String>,
    /// The threats it guards against.
    pub threats: Vec<String>,
}

/// One `[[mass_assignment]]` case (AZ-8): a caller who may call the operation tries to set a field it may not.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MassAssignmentCase {
    /// The operation whose request carries the field.
    pub operation: String,
    /// The principal class (`PrincipalClass::name`) that calls it; one the matrix allows, so a refusal proves AZ-8.
    pub principal: String,
    /// The field the caller must not be able to set.
    pub field: String,
    /// The value to send. A JSON value because it goes into a JSON request body as is.
    pub value: serde_json::Value,
    /// The refusal code if the target rejects the field (`validation_failed`).
    pub reject_with: String,
    /// Whether ignoring the field (and leaving it unchanged) also conforms.
    pub may_ignore: bool,
    /// The rules the case proves.
    pub rules: Vec<String>,
    /// The threats it guards against.
    pub threats: Vec<String>,
}

super::contract_file!(
    Matrix,
    "authorization-matrix.toml",
    parse_toml,
    include_str!("../../contracts/authorization-matrix.toml")
);

impl Matrix {
    /// The row of an operation, if the matrix has one.
    pub fn row(&self, op: OperationKind) -> Option<&MatrixRow> {
        self.operation.iter().find(|row| row.name == op.name())
    }

    /// What the matrix expects when `class` calls `op`; `None` if the matrix has no row for `op`.
    pub fn expected(&self, op: OperationKind, class: PrincipalClass) -> Option<Cell> {
        self.row(op).map(|row| row.cell(class))
    }

    /// Every row, in file order.
    pub fn rows(&self) -> std::slice::Iter<'_, MatrixRow> {
        self.operation.iter()
    }
}
