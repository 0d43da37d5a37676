//! Checks an EventBridge event pattern on its own, before it reaches moto: moto accepts about a
//! third of the malformed patterns AWS rejects (empty prefixes, bad CIDRs, malformed numeric
//! ranges) and gets some operators wrong (`equals-ignore-case`, `exists: false` on arrays). eddo's
//! patterns keep to the operators moto routes as AWS does, so a local run proves them.

use serde_json::Value;

/// `Ok` when `pattern` (JSON text) is a well-formed pattern using only the operators the local
/// stack routes faithfully; otherwise what is wrong, and where.
pub fn check_pattern(pattern: &str) -> Result<(), String> {
    let v: Value =
        serde_json::from_str(pattern).map_err(|e| format!("the pattern is not JSON: {e}"))?;
    object(&v, "")
}

fn object(v: &Value, at: &str) -> Result<(), String> {
    let m = v
        .as_object()
        .ok_or_else(|| format!("{}: expected an object, got {v}", here(at)))?;
    if m.is_empty() {
        return Err(format!("{}: an empty object matches nothing", here(at)));
    }
    for (k, v) in m {
        let path = if at.is_empty() {
            k.clone()
        } else {
            format!("{at}.{k}")
        };
        if k == "$or" {
            // Alternatives at this level, each a pattern of its own (moto matches each with the
            // same prefix, as EventBridge does).
            let alternatives = v.as_array().filter(|a| a.len() >= 2).ok_or_else(|| {
                format!("{path}: $or takes a list of at least two patterns, got {v}")
            })?;
            for a in alternatives {
                object(a, at)?;
            }
            continue;
        }
        if k.starts_with('$') {
            return Err(format!(
                "{path}: {k} is not used in eddo's patterns (the local emulator does not route it as AWS does)"
            ));
        }
        match v {
            Value::Object(_) => object(v, &path)?,
            Value::Array(values) => {
                if values.is_empty() {
                    return Err(format!("{path}: an empty list matches nothing"));
                }
                for value in values {
                    matcher(value, &path)?;
                }
            }
            other => {
                return Err(format!(
                    "{path}: a field's values must be a list, got {other}"
                ));
            }
        }
    }
    Ok(())
}

fn here(at: &str) -> &str {
    if at.is_empty() { "the pattern" } else { at }
}

fn matcher(v: &Value, at: &str) -> Result<(), String> {
    let Value::Object(m) = v else {
        return Ok(()); // An exact value: string, number, boolean or null.
    };
    let [(op, arg)] = m.iter().collect::<Vec<_>>()[..] else {
        return Err(format!("{at}: a matcher has exactly one operator, got {v}"));
    };
    let nonempty = |what: &str, s: &Value| match s.as_str() {
        Some(s) if !s.is_empty() => Ok(()),
        _ => Err(format!("{at}: {what} needs a non-empty string, got {s}")),
    };
    match op.as_str() {
        "prefix" | "suffix" => nonempty(op, arg),
        "anything-but" => match arg {
            Value::String(_) | Value::Number(_) => Ok(()),
            Value::Array(items) if !items.is_empty() => {
                if items.iter().all(|i| i.is_string() || i.is_number()) {
                    Ok(())
                } else {
                    Err(format!(
                        "{at}: anything-but takes strings or numbers, got {arg}"
                    ))
                }
            }
            Value::Object(inner) if inner.len() == 1 && inner.contains_key("prefix") => {
                nonempty("anything-but prefix", &inner["prefix"])
            }
            _ => Err(format!(
                "{at}: anything-but takes a value, a non-empty list or {{\"prefix\": ...}}, got {arg}"
            )),
        },
        "exists" => match arg {
            Value::Bool(true) => Ok(()),
            Value::Bool(false) => Err(format!(
                "{at}: exists: false is not used in eddo's patterns (moto mishandles it on arrays)"
            )),
            _ => Err(format!("{at}: exists takes true, got {arg}")),
        },
        "numeric" => numeric(arg, at),
        "cidr" => cidr(arg, at),
        other => Err(format!(
            "{at}: operator {other:?} is not used in eddo's patterns (the local emulator does not route it as AWS does)"
        )),
    }
}

fn numeric(arg: &Value, at: &str) -> Result<(), String> {
    let bad = || format!("{at}: numeric takes [op, number] or [>/>=, low, </<=, high], got {arg}");
    let items = arg.as_array().ok_or_else(bad)?;
    let pairs: Vec<(&str, f64)> = items
        .chunks(2)
        .map(|c| match c {
            [Value::String(op), Value::Number(n)] => Ok((op.as_str(), n.as_f64().unwrap_or(0.0))),
            _ => Err(bad()),
        })
        .collect::<Result<_, _>>()?;
    match pairs[..] {
        [(op, _)] if ["<", "<=", "=", ">", ">="].contains(&op) => Ok(()),
        [(lo, a), (hi, b)] if [">", ">="].contains(&lo) && ["<", "<="].contains(&hi) => {
            if a < b {
                Ok(())
            } else {
                Err(format!("{at}: numeric range {a}..{b} is empty"))
            }
        }
        _ => Err(bad()),
    }
}

fn cidr(arg: &Value, at: &str) -> Result<(), String> {
    let bad = || format!("{at}: cidr takes an IPv4 or IPv6 block like 10.0.0.0/24, got {arg}");
    let (ip, bits) = arg
        .as_str()
        .and_then(|s| s.split_once('/'))
        .ok_or_else(bad)?;
    let ip: std::net::IpAddr = ip.parse().map_err(|_| bad())?;
    let bits: u8 = bits.parse().map_err(|_| bad())?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    if bits > max {
        return Err(bad());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_formed_patterns_pass() {
        for p in [
            r#"{"source":["eddo.webhook"],"detail-type":["Git Push"],"detail":{"branch":["main","master"]}}"#,
            r#"{"source":[{"prefix":"eddo."}]}"#,
            r#"{"detail":{"project-name":[{"anything-but":["a","b"]}],"n":[{"numeric":[">",0,"<=",5]}]}}"#,
            r#"{"detail":{"x":[{"exists":true}],"ip":[{"cidr":"10.0.0.0/24"}],"s":[{"suffix":".png"}]}}"#,
            r#"{"detail":{"v":[null, true, 3]}}"#,
            r#"{"detail":{"$or":[{"r":{"full_name":["a/b"]}},{"r":{"owner":["a"]}}]}}"#,
        ] {
            assert_eq!(check_pattern(p), Ok(()), "{p}");
        }
    }

    #[test]
    fn each_mistake_is_named_with_its_field() {
        for (p, says) in [
            ("[", "not JSON"),
            ("[]", "expected an object"),
            ("{}", "empty object"),
            (
                r#"{"source":"eddo.webhook"}"#,
                "source: a field's values must be a list",
            ),
            (
                r#"{"detail":{"branch":[]}}"#,
                "detail.branch: an empty list",
            ),
            (
                r#"{"source":[{"prefix":""}]}"#,
                "prefix needs a non-empty string",
            ),
            (
                r#"{"source":[{"equals-ignore-case":"x"}]}"#,
                "\"equals-ignore-case\" is not used",
            ),
            (r#"{"detail":{"x":[{"exists":false}]}}"#, "exists: false"),
            (
                r#"{"detail":{"n":[{"numeric":[">",5,"<",1]}]}}"#,
                "range 5..1 is empty",
            ),
            (r#"{"detail":{"n":[{"numeric":["!",5]}]}}"#, "numeric takes"),
            (
                r#"{"detail":{"ip":[{"cidr":"10.0.0.300/24"}]}}"#,
                "cidr takes",
            ),
            (
                r#"{"detail":{"ip":[{"cidr":"10.0.0.0/33"}]}}"#,
                "cidr takes",
            ),
            (
                r#"{"$or":[{"a":["b"]}]}"#,
                "$or takes a list of at least two",
            ),
            (r#"{"$and":[{"a":["b"]}]}"#, "$and is not used"),
            (
                r#"{"a":[{"prefix":"x","suffix":"y"}]}"#,
                "exactly one operator",
            ),
        ] {
            let err = check_pattern(p).expect_err(p);
            assert!(err.contains(says), "{p}: {err}");
        }
    }
}
