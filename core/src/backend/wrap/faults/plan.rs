//! Parsing a fault plan (the syntax is in the parent module).

use std::fmt;
use std::time::Duration;

/// The environment variable a test sets to inject faults into every store a
/// cadang process opens.
pub const FAULTS_ENV: &str = "CADANG_FAULTS";

#[derive(Debug, thiserror::Error)]
#[error("the fault plan {spec:?} (test only, {FAULTS_ENV}) is not valid: {reason}; write rules like write:packs@2=fail (see cadang_core::backend::wrap::faults)")]
pub struct FaultSpecError {
    spec: String,
    reason: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Op {
    Read,
    Write,
    Delete,
    List,
    Stat,
    Any,
}

impl Op {
    /// The verb of the error message ("I/O error while trying to write …").
    pub(super) fn verb(self) -> &'static str {
        match self {
            Op::Read => "read",
            Op::Write => "write",
            Op::Delete => "delete",
            Op::List => "list",
            Op::Stat => "stat",
            Op::Any => "use",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum When {
    /// Calls `from..from+count` (1-based); `count` `None` is every later one.
    Calls {
        from: u64,
        count: Option<u64>,
    },
    Chance(f64),
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Action {
    Fail,
    Transient,
    NoSpace,
    Lost,
    Truncate,
    Delay(Duration),
}

#[derive(Clone, Debug, PartialEq)]
pub(super) struct Rule {
    pub(super) op: Op,
    /// A folder name (`packs`, `config`, `reports/drill-report`), or any.
    pub(super) kind: Option<String>,
    pub(super) when: When,
    pub(super) action: Action,
}

/// A parsed fault plan; see the module documentation for the syntax.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultPlan {
    pub(super) rules: Vec<Rule>,
    pub(super) seed: u64,
    spec: String,
}

impl fmt::Display for FaultPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.spec)
    }
}

impl FaultPlan {
    /// The plan in `CADANG_FAULTS`, if the variable is set and not empty.
    pub fn from_env() -> Result<Option<FaultPlan>, FaultSpecError> {
        match std::env::var(FAULTS_ENV) {
            Ok(spec) if !spec.trim().is_empty() => FaultPlan::parse(&spec).map(Some),
            _ => Ok(None),
        }
    }

    pub fn parse(spec: &str) -> Result<FaultPlan, FaultSpecError> {
        let bad = |reason: String| FaultSpecError {
            spec: spec.to_string(),
            reason,
        };
        let mut plan = FaultPlan {
            rules: Vec::new(),
            seed: 0,
            spec: spec.trim().to_string(),
        };
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if let Some(seed) = item.strip_prefix("seed=") {
                plan.seed = seed
                    .parse()
                    .map_err(|_| bad(format!("the seed {seed:?} is not a number")))?;
                continue;
            }
            plan.rules.push(parse_rule(item).map_err(bad)?);
        }
        if plan.rules.is_empty() {
            return Err(bad("it has no rule".into()));
        }
        Ok(plan)
    }
}

fn parse_rule(item: &str) -> Result<Rule, String> {
    let (target, action) = item
        .split_once('=')
        .ok_or_else(|| format!("{item:?} has no =ACTION"))?;
    let (target, when) = target
        .split_once('@')
        .ok_or_else(|| format!("{item:?} has no @WHEN"))?;
    let (op, kind) = match target.split_once(':') {
        Some((op, kind)) => (op, Some(kind.to_string())),
        None => (target, None),
    };
    let op = match op {
        "read" => Op::Read,
        "write" => Op::Write,
        "delete" => Op::Delete,
        "list" => Op::List,
        "stat" => Op::Stat,
        "any" => Op::Any,
        other => return Err(format!("{other:?} is not an operation")),
    };
    let action = parse_action(action)?;
    if action == Action::Truncate && op != Op::Read {
        return Err(format!("{item:?}: only reads can be truncated"));
    }
    Ok(Rule {
        op,
        kind,
        when: parse_when(when)?,
        action,
    })
}

fn parse_when(when: &str) -> Result<When, String> {
    let number = |s: &str| {
        s.parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("{s:?} is not a call number (1, 2, ...)"))
    };
    if let Some(p) = when.strip_suffix('%') {
        let p: f64 = p.parse().map_err(|_| format!("{when:?} is not a chance"))?;
        if !(0.0..=100.0).contains(&p) {
            return Err(format!("{when:?} is not between 0% and 100%"));
        }
        return Ok(When::Chance(p / 100.0));
    }
    if let Some(from) = when.strip_suffix('+') {
        return Ok(When::Calls {
            from: number(from)?,
            count: None,
        });
    }
    if let Some((from, count)) = when.split_once('x') {
        return Ok(When::Calls {
            from: number(from)?,
            count: Some(number(count)?),
        });
    }
    Ok(When::Calls {
        from: number(when)?,
        count: Some(1),
    })
}

fn parse_action(action: &str) -> Result<Action, String> {
    Ok(match action {
        "fail" => Action::Fail,
        "transient" => Action::Transient,
        "nospace" => Action::NoSpace,
        "lost" => Action::Lost,
        "truncate" => Action::Truncate,
        other => match other.strip_prefix("delay:") {
            Some(ms) => Action::Delay(Duration::from_millis(
                ms.trim_end_matches("ms")
                    .parse()
                    .map_err(|_| format!("{other:?}: the delay is not milliseconds"))?,
            )),
            None => return Err(format!("{other:?} is not an action")),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_parse() {
        let p = FaultPlan::parse("write:packs@2=fail, read@1x3=transient,seed=7").unwrap();
        assert_eq!(p.seed, 7);
        assert_eq!(p.rules.len(), 2);
        assert_eq!(p.rules[0].op, Op::Write);
        assert_eq!(p.rules[0].kind.as_deref(), Some("packs"));
        assert_eq!(
            p.rules[0].when,
            When::Calls {
                from: 2,
                count: Some(1)
            }
        );
        assert_eq!(p.rules[1].action, Action::Transient);
        assert_eq!(
            FaultPlan::parse("any@3+=delay:250").unwrap().rules[0].action,
            Action::Delay(Duration::from_millis(250))
        );
        assert_eq!(
            FaultPlan::parse("stat@50%=lost").unwrap().rules[0].when,
            When::Chance(0.5)
        );
    }

    #[test]
    fn bad_plans_say_what_is_wrong() {
        for (spec, says) in [
            ("", "no rule"),
            ("write:packs=fail", "no @WHEN"),
            ("write@2", "no =ACTION"),
            ("copy@1=fail", "not an operation"),
            ("write@0=fail", "call number"),
            ("write@1=explode", "not an action"),
            ("write@1=truncate", "only reads"),
            ("read@150%=fail", "between"),
            ("read@1=fail,seed=x", "seed"),
        ] {
            let e = FaultPlan::parse(spec).unwrap_err().to_string();
            assert!(e.contains(says), "{spec:?}: {e}");
        }
    }
}
