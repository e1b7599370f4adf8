//! The time range a query's filters allow, used to prune partitions (and to materialize only
//! what the query needs) before any file is opened.

use datafusion::common::ScalarValue;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator};

/// `[min, max]` in ns since the Unix epoch allowed by the conjunction of `filters` on any of
/// `columns`; `None` when they do not bound time.
pub fn time_range(filters: &[Expr], columns: &[&str]) -> Option<(i64, i64)> {
    let (mut min, mut max) = (i64::MIN, i64::MAX);
    let mut bounded = false;
    let mut visit = |e: &Expr| {
        if let Some((lo, hi)) = bound(e, columns) {
            min = min.max(lo);
            max = max.min(hi);
            bounded = true;
        }
    };
    for f in filters {
        for e in conjuncts(f) {
            visit(e);
        }
    }
    bounded.then_some((min, max))
}

fn conjuncts(e: &Expr) -> Vec<&Expr> {
    match e {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::And,
            right,
        }) => {
            let mut v = conjuncts(left);
            v.extend(conjuncts(right));
            v
        }
        other => vec![other],
    }
}

fn is_time_column(e: &Expr, columns: &[&str]) -> bool {
    match e {
        Expr::Column(c) => columns.contains(&c.name.as_str()),
        Expr::Cast(c) => is_time_column(&c.expr, columns),
        Expr::TryCast(c) => is_time_column(&c.expr, columns),
        _ => false,
    }
}

fn nanos(e: &Expr) -> Option<i64> {
    let Expr::Literal(v, _) = e else { return None };
    match v {
        ScalarValue::TimestampNanosecond(Some(v), _) => Some(*v),
        ScalarValue::TimestampMicrosecond(Some(v), _) => v.checked_mul(1_000),
        ScalarValue::TimestampMillisecond(Some(v), _) => v.checked_mul(1_000_000),
        ScalarValue::TimestampSecond(Some(v), _) => v.checked_mul(1_000_000_000),
        _ => None,
    }
}

fn bound(e: &Expr, columns: &[&str]) -> Option<(i64, i64)> {
    match e {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let (op, t) = if is_time_column(left, columns) {
                (*op, nanos(right)?)
            } else if is_time_column(right, columns) {
                (op.swap()?, nanos(left)?)
            } else {
                return None;
            };
            match op {
                Operator::Gt | Operator::GtEq => Some((t, i64::MAX)),
                Operator::Lt | Operator::LtEq => Some((i64::MIN, t)),
                Operator::Eq => Some((t, t)),
                _ => None,
            }
        }
        Expr::Between(b) if !b.negated && is_time_column(&b.expr, columns) => {
            Some((nanos(&b.low)?, nanos(&b.high)?))
        }
        _ => None,
    }
}
