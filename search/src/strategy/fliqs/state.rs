//! Exact floating-point numbers in the saved state (serde_json parses plain JSON numbers
//! with up to one ulp of error).

use serde_json::{Map, Number, Value};

use crate::strategy::StrategyError;

/// Replaces every floating-point number by `{"f64": "<shortest round-trip decimal>"}`.
pub(super) fn exact_floats(v: Value) -> Value {
    match v {
        Value::Number(n) if !n.is_u64() && !n.is_i64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            let mut m = Map::new();
            m.insert("f64".into(), Value::String(format!("{f:?}")));
            Value::Object(m)
        }
        Value::Array(a) => Value::Array(a.into_iter().map(exact_floats).collect()),
        Value::Object(o) => {
            Value::Object(o.into_iter().map(|(k, v)| (k, exact_floats(v))).collect())
        }
        other => other,
    }
}

/// The inverse of [`exact_floats`].
pub(super) fn plain_floats(v: Value) -> Result<Value, StrategyError> {
    Ok(match v {
        Value::Object(o) if o.len() == 1 && o.contains_key("f64") => {
            let text = o["f64"]
                .as_str()
                .ok_or_else(|| StrategyError::State("an `f64` entry is not a string".into()))?;
            let f: f64 = text
                .parse()
                .map_err(|_| StrategyError::State(format!("`{text}` is not a number")))?;
            Value::Number(
                Number::from_f64(f)
                    .ok_or_else(|| StrategyError::State(format!("`{text}` is not finite")))?,
            )
        }
        Value::Array(a) => Value::Array(a.into_iter().map(plain_floats).collect::<Result<_, _>>()?),
        Value::Object(o) => Value::Object(
            o.into_iter()
                .map(|(k, v)| Ok((k, plain_floats(v)?)))
                .collect::<Result<_, StrategyError>>()?,
        ),
        other => other,
    })
}
