//! Request-body validation against the Graph v1.0 JSON Schema bundle
//! (`data/graph-jsonschema-subset.json`): types and patterns through the `jsonschema` crate
//! (validators compiled once per schema, lazily), plus a strict walk that rejects property
//! names the type does not declare, as Graph does ("Property 'x' does not exist on type …").

use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

static BUNDLE_JSON: &str = include_str!("data/graph-jsonschema-subset.json");

fn bundle() -> &'static Value {
    static B: OnceLock<Value> = OnceLock::new();
    B.get_or_init(|| serde_json::from_str(BUNDLE_JSON).unwrap_or(Value::Null))
}

fn defs() -> &'static Map<String, Value> {
    static EMPTY: OnceLock<Map<String, Value>> = OnceLock::new();
    bundle()
        .get("$defs")
        .and_then(Value::as_object)
        .unwrap_or_else(|| EMPTY.get_or_init(Map::new))
}

fn validator(def: &str) -> Option<Arc<jsonschema::Validator>> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<jsonschema::Validator>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(v) = cache.lock().ok()?.get(def) {
        return Some(v.clone());
    }
    let root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$defs": defs(),
        "$ref": format!("#/$defs/{}", def.replace('~', "~0").replace('/', "~1")),
    });
    let v = Arc::new(jsonschema::validator_for(&root).ok()?);
    cache.lock().ok()?.insert(def.to_string(), v.clone());
    Some(v)
}

/// Why a body was rejected: the message Graph would give, and the JSON pointer.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaError {
    pub message: String,
    pub pointer: String,
}

/// Validates `body` against `$defs[def]` (e.g. `request:applications.application.addPassword`
/// or `microsoft.graph.application`).
pub fn validate(def: &str, body: &Value) -> Result<(), SchemaError> {
    if !defs().contains_key(def) {
        return Ok(());
    }
    // Unknown properties first: Graph names them.
    let mut guard = 0usize;
    if let Some(s) = defs().get(def) {
        let hint = s
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix("#/$defs/"))
            .unwrap_or(def);
        if let Err(mut e) = check_known_static(s, body, "", &mut guard, Some(hint.to_string())) {
            if let Some(op) = def
                .strip_prefix("request:")
                .filter(|_| s.get("$ref").is_none())
            {
                // An action's parameters (GUESS: Graph's OData wording for an unknown parameter).
                let op = op.rsplit('.').next().unwrap_or(op);
                let param = e
                    .pointer
                    .trim_start_matches('/')
                    .split('/')
                    .next()
                    .unwrap_or("")
                    .to_string();
                if !e.pointer.trim_start_matches('/').contains('/') {
                    e.message = format!("The parameter '{param}' in the request payload is not a valid parameter for the operation '{op}'.");
                }
            }
            return Err(e);
        }
    }
    let Some(v) = validator(def) else {
        return Ok(());
    };
    if let Some(e) = v.iter_errors(body).next() {
        let pointer = e.instance_path().to_string();
        let prop = pointer
            .rsplit('/')
            .find(|s| !s.chars().all(|c| c.is_ascii_digit()))
            .unwrap_or("")
            .to_string();
        let ty = owner_type(def, &pointer);
        // GUESS: Graph's wording for a value of the wrong type/shape.
        let message = if prop.is_empty() {
            "Invalid request body.".to_string()
        } else {
            format!("Invalid value specified for property '{prop}' of resource '{ty}'.")
        };
        return Err(SchemaError { message, pointer });
    }
    Ok(())
}

/// The short type name (`application`) whose property the pointer ends in (best effort).
fn owner_type(def: &str, _pointer: &str) -> String {
    let d = defs().get(def);
    let name = match d.and_then(|d| d.get("$ref")).and_then(Value::as_str) {
        Some(r) => r.rsplit('/').next().unwrap_or(def).to_string(),
        None => def.to_string(),
    };
    let short = name.rsplit('.').next().unwrap_or(&name);
    let mut c = short.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

fn resolve(r: &str) -> Option<(&'static Value, String)> {
    let name = r
        .strip_prefix("#/$defs/")?
        .replace("~1", "/")
        .replace("~0", "~");
    defs().get(&name).map(|v| (v, name))
}

/// Collects the declared properties of an object schema (through `$ref` and `allOf`), with the
/// name of the most specific named type.
fn object_props(
    schema: &'static Value,
    name: &mut Option<String>,
    out: &mut Vec<(&'static str, &'static Value)>,
    depth: usize,
) -> bool {
    if depth > 20 {
        return false;
    }
    let mut is_obj = false;
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        if let Some((s, n)) = resolve(r) {
            if name.is_none() || depth == 0 {
                *name = Some(n);
            }
            is_obj |= object_props(s, name, out, depth + 1);
        }
    }
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for s in all {
            is_obj |= object_props(s, name, out, depth + 1);
        }
    }
    if let Some(p) = schema.get("properties").and_then(Value::as_object) {
        is_obj = true;
        for (k, v) in p {
            out.push((k.as_str(), v));
        }
    }
    if schema.get("additionalProperties").is_some() {
        // Open by declaration (ReferenceCreate): anything goes.
        out.push(("*", &Value::Null));
    }
    is_obj
}

fn check_known_static(
    schema: &'static Value,
    value: &Value,
    pointer: &str,
    guard: &mut usize,
    name_hint: Option<String>,
) -> Result<(), SchemaError> {
    *guard += 1;
    if *guard > 20_000 {
        return Ok(());
    }
    // Nullable structured values: anyOf [ {$ref}, {type: null} ] → follow the non-null branch.
    if let Some(any) = schema.get("anyOf").and_then(Value::as_array) {
        if value.is_null() {
            return Ok(());
        }
        if let Some(s) = any.iter().find(|s| s.get("$ref").is_some()) {
            return check_known_static(s, value, pointer, guard, None);
        }
        return Ok(());
    }
    match value {
        Value::Object(map) => {
            let mut props = vec![];
            let mut name = name_hint;
            if !object_props(schema, &mut name, &mut props, 0) {
                return Ok(());
            }
            if props.iter().any(|(k, _)| *k == "*") {
                return Ok(());
            }
            for (k, v) in map {
                if k.starts_with("@odata.") || k.contains("@odata.") {
                    continue;
                }
                match props.iter().find(|(p, _)| *p == k) {
                    Some((_, ps)) => {
                        let bad_type = !fits(ps, v)
                            || (v.is_array()
                                && items_of(ps).is_some_and(|it| {
                                    v.as_array().into_iter().flatten().any(|x| !fits(it, x))
                                }));
                        if bad_type {
                            // GUESS: Graph's wording for a value of the wrong JSON type.
                            return Err(SchemaError {
                                message: format!(
                                    "Invalid value specified for property '{k}' of resource '{}'.",
                                    resource_name(name.as_deref().unwrap_or("object"))
                                ),
                                pointer: format!("{pointer}/{k}"),
                            });
                        }
                        check_known_static(ps, v, &format!("{pointer}/{k}"), guard, None)?
                    }
                    None => {
                        let ty = name.clone().unwrap_or_else(|| "object".into());
                        return Err(SchemaError {
                            message: format!("Property '{k}' does not exist on type '{ty}'."),
                            pointer: format!("{pointer}/{k}"),
                        });
                    }
                }
            }
            Ok(())
        }
        Value::Array(items) => {
            let Some(item_schema) = schema.get("items") else {
                return Ok(());
            };
            for (i, it) in items.iter().enumerate() {
                check_known_static(item_schema, it, &format!("{pointer}/{i}"), guard, None)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// `microsoft.graph.spaApplication` → `SpaApplication`.
fn resource_name(def: &str) -> String {
    let short = def.rsplit('.').next().unwrap_or(def);
    let mut c = short.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// The JSON kinds a schema admits (`None` = no opinion).
fn kinds(schema: &Value, depth: usize) -> Option<Vec<String>> {
    if depth > 10 {
        return None;
    }
    if let Some(t) = schema.get("type") {
        return match t {
            Value::String(s) => Some(vec![s.clone()]),
            Value::Array(a) => Some(
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect(),
            ),
            _ => None,
        };
    }
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let (s, _) = resolve(r)?;
        if s.get("allOf").is_some() || s.get("properties").is_some() {
            return Some(vec!["object".into()]);
        }
        if s.get("enum").is_some() {
            return Some(vec!["string".into(), "null".into()]);
        }
        return kinds(s, depth + 1);
    }
    if let Some(any) = schema.get("anyOf").and_then(Value::as_array) {
        let mut out = vec![];
        for b in any {
            out.extend(kinds(b, depth + 1)?);
        }
        return Some(out);
    }
    None
}

fn fits(schema: &Value, v: &Value) -> bool {
    let Some(k) = kinds(schema, 0) else {
        return true;
    };
    k.iter().any(|t| match t.as_str() {
        "string" => v.is_string(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        "boolean" => v.is_boolean(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "null" => v.is_null(),
        _ => true,
    })
}

fn items_of(schema: &Value) -> Option<&Value> {
    schema.get("items")
}

/// Top-level property names declared by a type (for `$select` checks).
pub fn declared_props(def: &str) -> Vec<String> {
    let Some(s) = defs().get(def) else {
        return vec![];
    };
    let mut out = vec![];
    let mut name = None;
    object_props(s, &mut name, &mut out, 0);
    out.into_iter()
        .map(|(k, _)| k.to_string())
        .filter(|k| k != "*")
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_unknown_and_bad_types() {
        let d = "microsoft.graph.application";
        assert!(validate(
            d,
            &json!({"displayName": "x", "spa": {"redirectUris": ["http://localhost"]}})
        )
        .is_ok());
        let e = validate(d, &json!({"displayName": "x", "displayNme": "y"})).unwrap_err();
        assert_eq!(
            e.message,
            "Property 'displayNme' does not exist on type 'microsoft.graph.application'."
        );
        let e = validate(d, &json!({"spa": {"redirectUri": []}})).unwrap_err();
        assert_eq!(
            e.message,
            "Property 'redirectUri' does not exist on type 'microsoft.graph.spaApplication'."
        );
        let e = validate(
            d,
            &json!({"requiredResourceAccess": [{"resourceAppId": 123}]}),
        )
        .unwrap_err();
        assert!(e.message.contains("resourceAppId"), "{e:?}");
        assert!(validate(d, &json!({"spa": {"redirectUris": "x"}})).is_err());
        assert!(validate(
            "request:applications.application.addPassword",
            &json!({"passwordCredential": {"endDateTime": "next year"}})
        )
        .is_err());
        assert!(validate(
            "request:applications.CreateRefOwners",
            &json!({"@odata.id": "https://x/v1.0/directoryObjects/1"})
        )
        .is_ok());
        assert!(validate(
            d,
            &json!({"owners@odata.bind": ["x"], "@odata.type": "#microsoft.graph.application"})
        )
        .is_ok());
    }
}
