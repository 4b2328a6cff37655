//! Mutations of JSON files, shared by the fuzz tests of the loaders that read JSON (a search's
//! `state.json`, a model folder's `model.json`): structural edits of the parsed document
//! (values replaced by odd ones, keys and elements removed, added or duplicated) and byte edits
//! of the text. Included with `#[path]` by those tests; every draw comes from the caller's
//! seeded [`Rng`].

#![allow(dead_code)]

use serde_json::{Value, json};
use spaces::Rng;

/// How large a mutation's values may get: the longest string and the deepest nesting it makes.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Characters of the longest string.
    pub string: usize,
    /// Depth of the deepest nested array.
    pub depth: usize,
}

/// A value to write over one of `doc`'s: limits of every JSON type, empty and huge values,
/// deep nesting, or a node of the document itself from elsewhere.
pub fn odd_value(rng: &mut Rng, doc: &Value, limits: Limits) -> Value {
    match rng.below(20) {
        0 => Value::Null,
        1 => Value::Bool(rng.chance(0.5)),
        2 => (-1).into(),
        3 => 0.into(),
        4 => u64::MAX.into(),
        5 => i64::MIN.into(),
        6 => 1e308.into(),
        7 => (-0.5).into(),
        8 => "".into(),
        9 => "x".repeat(rng.below(limits.string)).into(),
        10 => Value::Array(Vec::new()),
        11 => Value::Object(serde_json::Map::new()),
        12 => (0..rng.below(limits.depth)).fold(Value::Null, |v, _| Value::Array(vec![v])),
        13 => (rng.below(1_000) as u64).into(),
        14 => (1u64 << 32).into(),
        15 => json!([0.0, 0.0, 0.0]),
        16 => 1e-45.into(),
        17 => json!(usize::MAX as f64),
        _ => pick(rng, doc).clone(),
    }
}

/// A random node of `v`.
pub fn pick<'a>(rng: &mut Rng, v: &'a Value) -> &'a Value {
    let mut at = v;
    loop {
        let children: Vec<&Value> = match at {
            Value::Array(a) => a.iter().collect(),
            Value::Object(o) => o.values().collect(),
            _ => return at,
        };
        if children.is_empty() || rng.chance(0.3) {
            return at;
        }
        at = children[rng.below(children.len())];
    }
}

/// One structural edit of `doc`: a value replaced, a key removed or added, an element removed
/// or duplicated.
pub fn edit_value(rng: &mut Rng, doc: &mut Value, limits: Limits) {
    let new = odd_value(rng, doc, limits);
    edit_at(rng, doc, new);
}

fn edit_at(rng: &mut Rng, at: &mut Value, new: Value) {
    let deeper = rng.chance(0.75);
    match at {
        Value::Array(a) if !a.is_empty() => {
            let i = rng.below(a.len());
            if deeper {
                edit_at(rng, &mut a[i], new);
            } else if rng.chance(0.5) {
                a.remove(i);
            } else {
                let dup = a[i].clone();
                a.insert(i, dup);
            }
        }
        Value::Object(o) if !o.is_empty() => {
            let key = o.keys().nth(rng.below(o.len())).unwrap().clone();
            if deeper {
                edit_at(rng, o.get_mut(&key).unwrap(), new);
            } else if rng.chance(0.5) {
                o.remove(&key);
            } else {
                o.insert(format!("{key}_extra"), new);
            }
        }
        _ => *at = new,
    }
}

/// One byte-level edit of a text: a byte changed, a range deleted, a truncation, bytes that are
/// not UTF-8, a number at a limit.
pub fn edit_bytes(rng: &mut Rng, b: &mut Vec<u8>) {
    let at = rng.below(b.len() + 1);
    match rng.below(5) {
        0 if at < b.len() => b[at] ^= 1 + rng.below(255) as u8,
        1 => {
            let end = (at + 1 + rng.below(40)).min(b.len());
            b.drain(at..end);
        }
        2 => b.truncate(at),
        3 => {
            let bad: &[u8] = [b"\xff".as_slice(), b"\xc3", b"\xed\xa0\x80", b"\x00"][rng.below(4)];
            b.splice(at..at, bad.iter().copied());
        }
        _ => {
            let n = ["1e999", "-1", "18446744073709551616", "0.5", "NaN"][rng.below(5)];
            b.splice(at..at, n.bytes());
        }
    }
}
