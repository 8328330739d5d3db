//! What the review page and the API read: filtered, sorted, paged discrepancy lists within an
//! operator's scope, one discrepancy, the dashboard's counts, assignment.

use super::discrepancies::{stored_discrepancy, StoredDiscrepancy};
use super::sql::{args, Param};
use super::{now, Result, Store, StoreError};

/// The divisions an operator may see: those starting with the prefix ('' for all). Only an
/// operator of the whole region sees discrepancies with no division.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope(pub String);

impl Scope {
    pub fn covers(&self, division: Option<&str>) -> bool {
        self.0.is_empty() || division.is_some_and(|d| d.starts_with(&self.0))
    }
}

/// A list request. Text fields left empty do not filter.
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
#[serde(default)]
pub struct ListQuery {
    pub period: String,
    pub kind: String,
    /// A division prefix within the scope.
    pub division: String,
    /// A status, or `unresolved` for open, possible_match and confirmed.
    pub status: String,
    pub severity: String,
    /// An operator's name, or `-` for unassigned.
    pub assignee: String,
    /// Words found in keys, names or the explanation.
    pub q: String,
    /// id | kind | division | severity | status | score | first_seen
    pub sort: String,
    /// `asc` or `desc`
    pub dir: String,
    pub page: u64,
    pub per_page: u64,
}

/// One line of the list.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ListRow {
    pub id: String,
    pub period: String,
    pub kind: String,
    pub division: Option<String>,
    pub severity: String,
    pub status: String,
    pub score: f64,
    pub assignee: Option<String>,
    pub anchor: String,
    pub registry_key: Option<String>,
    pub first_seen: String,
}

/// One discrepancy with everything the detail page shows.
#[derive(Debug, Clone)]
pub struct ReviewItem {
    pub stored: StoredDiscrepancy,
    pub assignee: Option<String>,
    pub first_seen: String,
    pub last_seen: String,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Dashboard {
    pub period: String,
    /// (kind, unresolved, all)
    pub by_kind: Vec<(String, u64, u64)>,
    /// (division, unresolved)
    pub by_division: Vec<(String, u64)>,
    /// (period, unresolved, all), oldest first
    pub trend: Vec<(String, u64, u64)>,
    pub oldest_open: Vec<ListRow>,
}

const UNRESOLVED: &str = "status IN ('open', 'possible_match', 'confirmed')";
const LIST_COLUMNS: &str = "id, period, kind, division, severity, status, score, assignee, anchor, registry_key, first_seen";

fn list_row(r: &super::sql::Row) -> Result<ListRow> {
    Ok(ListRow {
        id: r.get(0)?,
        period: r.get(1)?,
        kind: r.get(2)?,
        division: r.get(3)?,
        severity: r.get(4)?,
        status: r.get(5)?,
        score: r.get(6)?,
        assignee: r.get(7)?,
        anchor: r.get(8)?,
        registry_key: r.get(9)?,
        first_seen: r.get(10)?,
    })
}

/// A WHERE clause and its values, built from a scope and a list query.
struct Filter<'a> {
    conditions: Vec<String>,
    params: Vec<Param<'a>>,
}

impl<'a> Filter<'a> {
    fn new(scope: &'a Scope, scope_like: &'a str) -> Filter<'a> {
        let mut f = Filter {
            conditions: Vec::new(),
            params: Vec::new(),
        };
        if !scope.0.is_empty() {
            f.push("division LIKE ?", Param::Text(scope_like));
        }
        f
    }

    fn push(&mut self, condition: &str, value: Param<'a>) {
        self.params.push(value);
        self.conditions
            .push(condition.replace('?', &format!("?{}", self.params.len())));
    }

    fn sql(&self) -> String {
        if self.conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.conditions.join(" AND "))
        }
    }
}

/// Owned LIKE patterns a filter borrows from.
struct Patterns {
    scope: String,
    division: String,
    text: String,
}

impl Patterns {
    fn new(scope: &Scope, q: &ListQuery) -> Patterns {
        Patterns {
            scope: format!("{}%", scope.0),
            division: format!("{}%", q.division.trim()),
            text: format!("%{}%", q.q.trim()),
        }
    }
}

fn list_filter<'a>(scope: &'a Scope, q: &'a ListQuery, p: &'a Patterns) -> Filter<'a> {
    let mut f = Filter::new(scope, &p.scope);
    if !q.period.is_empty() {
        f.push("period = ?", Param::Text(&q.period));
    }
    if !q.kind.is_empty() {
        f.push("kind = ?", Param::Text(&q.kind));
    }
    if !q.division.trim().is_empty() {
        f.push("division LIKE ?", Param::Text(&p.division));
    }
    match q.status.as_str() {
        "" => {}
        "unresolved" => f.conditions.push(UNRESOLVED.to_owned()),
        s => f.push("status = ?", Param::Text(s)),
    }
    if !q.severity.is_empty() {
        f.push("severity = ?", Param::Text(&q.severity));
    }
    match q.assignee.as_str() {
        "" => {}
        "-" => f.conditions.push("assignee IS NULL".to_owned()),
        a => f.push("assignee = ?", Param::Text(a)),
    }
    if !q.q.trim().is_empty() {
        // Keys are columns; names and the explanation live in the stored body.
        f.params.push(Param::Text(&p.text));
        let n = f.params.len();
        f.conditions.push(format!(
            "(anchor LIKE ?{n} OR registry_key LIKE ?{n} OR id LIKE ?{n} OR body LIKE ?{n})"
        ));
    }
    f
}

fn order_by(q: &ListQuery) -> String {
    let column = match q.sort.as_str() {
        "kind" => "kind",
        "division" => "division",
        "severity" => "CASE severity WHEN 'high' THEN 3 WHEN 'medium' THEN 2 ELSE 1 END",
        "status" => "status",
        "score" => "score",
        "first_seen" => "first_seen",
        _ => "period DESC, seq",
    };
    let dir = if q.dir == "desc" { "DESC" } else { "ASC" };
    if column.starts_with("period") {
        format!("{column} {dir}")
    } else {
        format!("{column} {dir}, period DESC, seq")
    }
}

impl Store {
    /// One page of the list and the number of all matching discrepancies.
    pub fn discrepancy_page(&self, scope: &Scope, q: &ListQuery) -> Result<(u64, Vec<ListRow>)> {
        let p = Patterns::new(scope, q);
        let f = list_filter(scope, q, &p);
        let total: u64 = self
            .conn
            .query_one(
                &format!("SELECT COUNT(*) FROM discrepancies{}", f.sql()),
                &f.params,
            )?
            .get(0)?;
        let per_page = q.per_page.clamp(1, 500);
        let offset = q.page.saturating_sub(1) * per_page;
        let rows = self.conn.query(
            &format!(
                "SELECT {LIST_COLUMNS} FROM discrepancies{} ORDER BY {} LIMIT {per_page} OFFSET {offset}",
                f.sql(),
                order_by(q)
            ),
            &f.params,
        )?;
        Ok((total, rows.iter().map(list_row).collect::<Result<_>>()?))
    }

    /// Ids of every discrepancy the filter matches (bulk actions, exports), in list order.
    pub fn discrepancy_ids(&self, scope: &Scope, q: &ListQuery) -> Result<Vec<String>> {
        let p = Patterns::new(scope, q);
        let f = list_filter(scope, q, &p);
        self.conn
            .query(
                &format!(
                    "SELECT id FROM discrepancies{} ORDER BY {}",
                    f.sql(),
                    order_by(q)
                ),
                &f.params,
            )?
            .iter()
            .map(|r| r.get(0))
            .collect()
    }

    /// Every discrepancy the filter matches, whole, in list order (exports).
    pub fn review_export(&self, scope: &Scope, q: &ListQuery) -> Result<Vec<StoredDiscrepancy>> {
        let p = Patterns::new(scope, q);
        let f = list_filter(scope, q, &p);
        let rows = self.conn.query(
            &format!(
                "SELECT id, status, body FROM discrepancies{} ORDER BY {}",
                f.sql(),
                order_by(q)
            ),
            &f.params,
        )?;
        rows.iter().map(stored_discrepancy).collect()
    }

    /// One discrepancy, if it exists and lies in the scope. Its history is
    /// [`Store::discrepancy_history`], read only by those who show it.
    pub fn review_item(&self, scope: &Scope, id: &str) -> Result<Option<ReviewItem>> {
        let Some(r) = self.conn.query_opt(
            "SELECT id, status, body, division, assignee, first_seen, last_seen FROM discrepancies WHERE id = ?1",
            args![id],
        )?
        else {
            return Ok(None);
        };
        let division: Option<String> = r.get(3)?;
        if !scope.covers(division.as_deref()) {
            return Ok(None);
        }
        Ok(Some(ReviewItem {
            stored: stored_discrepancy(&r)?,
            assignee: r.get(4)?,
            first_seen: r.get(5)?,
            last_seen: r.get(6)?,
        }))
    }

    /// Assigns (or with `None` unassigns) a discrepancy, kept in its history.
    pub fn assign_discrepancy(
        &mut self,
        id: &str,
        assignee: Option<&str>,
        actor: &str,
    ) -> Result<()> {
        let tx = self.conn.transaction()?;
        let status: String = tx
            .query_opt("SELECT status FROM discrepancies WHERE id = ?1", args![id])?
            .ok_or_else(|| StoreError::NotFound(format!("no discrepancy {id}")))?
            .get(0)?;
        tx.execute(
            "UPDATE discrepancies SET assignee = ?2 WHERE id = ?1",
            args![id, assignee],
        )?;
        let note = match assignee {
            Some(a) => format!("assigned to {a}"),
            None => "unassigned".to_owned(),
        };
        tx.execute(
            "INSERT INTO discrepancy_history (discrepancy_id, at, actor, from_status, to_status, note) VALUES (?1, ?2, ?3, ?4, ?4, ?5)",
            args![id, now(), actor, status, note],
        )?;
        tx.commit()
    }

    /// Periods that have discrepancies, newest first.
    pub fn review_periods(&self) -> Result<Vec<String>> {
        self.conn
            .query(
                "SELECT DISTINCT period FROM discrepancies ORDER BY period DESC",
                &[],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect()
    }

    pub fn dashboard(&self, scope: &Scope, period: &str) -> Result<Dashboard> {
        let p = Patterns::new(scope, &ListQuery::default());
        let mut f = Filter::new(scope, &p.scope);
        let scoped = f.sql();
        f.push("period = ?", Param::Text(period));
        let in_period = f.sql();
        let counts = |sql: String, params: &[Param]| -> Result<Vec<(String, u64, u64)>> {
            self.conn
                .query(&sql, params)?
                .iter()
                .map(|r| {
                    Ok((
                        r.get::<Option<String>>(0)?.unwrap_or_default(),
                        r.get(1)?,
                        r.get(2)?,
                    ))
                })
                .collect()
        };
        // One pass over the covering index gives both the kinds and the districts.
        let mut kinds: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
        let mut divisions: std::collections::BTreeMap<String, u64> = Default::default();
        for r in self.conn.query(
            &format!("SELECT kind, division, {UNRESOLVED}, COUNT(*) FROM discrepancies{in_period} GROUP BY kind, division, status"),
            &f.params,
        )? {
            let (kind, division, open, n): (String, Option<String>, bool, u64) =
                (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
            let open_n = if open { n } else { 0 };
            let k = kinds.entry(kind).or_default();
            k.0 += open_n;
            k.1 += n;
            *divisions.entry(division.unwrap_or_default()).or_default() += open_n;
        }
        let by_kind = kinds.into_iter().map(|(k, (o, a))| (k, o, a)).collect();
        let by_division = divisions.into_iter().collect();
        // SUM over integers is NUMERIC on PostgreSQL; the store reads 64-bit integers.
        let unresolved = format!("SUM(CASE WHEN {UNRESOLVED} THEN 1 ELSE 0 END)");
        let scope_params = &f.params[..f.params.len() - 1];
        let mut trend = counts(
            format!("SELECT period, CAST({unresolved} AS BIGINT), COUNT(*) FROM discrepancies{scoped} GROUP BY period ORDER BY period DESC LIMIT 12"),
            scope_params,
        )?;
        trend.reverse();
        let mut open = f;
        open.conditions.push(UNRESOLVED.to_owned());
        let oldest_open = self
            .conn
            .query(
                &format!(
                    "SELECT {LIST_COLUMNS} FROM discrepancies{} ORDER BY first_seen, seq LIMIT 10",
                    open.sql()
                ),
                &open.params,
            )?
            .iter()
            .map(list_row)
            .collect::<Result<_>>()?;
        Ok(Dashboard {
            period: period.to_owned(),
            by_kind,
            by_division,
            trend,
            oldest_open,
        })
    }
}
