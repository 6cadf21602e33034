//! Schemas that state the core's rules without enforcing them: the
//! [`Documented`] wrapper and the rules of each request body and parameter.

use std::borrow::Cow;
use std::marker::PhantomData;
use std::ops::Deref;

use oponn_core::domain::{
    LABEL_MAX_CHARS, MAX_OPTIONS, MAX_WINDOW_MINUTES, MEASURE_MAX_CHARS, MEASURE_MIN_CHARS,
};
use poem_openapi::registry::{MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::types::{
    ParseError, ParseFromJSON, ParseFromParameter, ParseResult, ToJSON, Type,
};
use serde_json::Value;

/// A request value whose schema states rules that the core enforces.
///
/// A poem-openapi validator would refuse such input itself, with a `400`
/// naming one rule, before the core saw it; the core answers `422` naming
/// every broken rule in its own words. So these rules are only documented
/// here, and the core stays the one place that checks them.
pub(crate) struct Documented<T, R>(T, PhantomData<fn() -> R>);

/// The rules a [`Documented`] value's schema states.
pub(crate) trait SchemaRules {
    /// The documented schema, given the plain schema of the value's type.
    fn schema(plain: MetaSchemaRef) -> MetaSchemaRef;

    /// The names of the fields the schema declares as text (a string, or
    /// an array of strings): poem-openapi would read a number or a boolean
    /// there as its text (`false` as `"false"`), which the schema does not
    /// allow, so such a body is refused before it is parsed.
    fn text_fields() -> &'static [&'static str] {
        &[]
    }
}

/// `None` when every field `names` lists in `value` holds text (or null,
/// or is absent); else the first field that does not.
fn non_text_field(value: Option<&Value>, names: &[&'static str]) -> Option<&'static str> {
    let object = value?.as_object()?;
    names.iter().copied().find(|name| match object.get(*name) {
        None | Some(Value::Null | Value::String(_)) => false,
        Some(Value::Array(items)) => !items.iter().all(Value::is_string),
        Some(_) => true,
    })
}

impl<T, R> Documented<T, R> {
    /// The value as parsed.
    pub(super) fn into_inner(self) -> T {
        self.0
    }
}

impl<T, R> Deref for Documented<T, R> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: std::fmt::Debug, R> std::fmt::Debug for Documented<T, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl<T: Default, R> Default for Documented<T, R> {
    fn default() -> Self {
        Self(T::default(), PhantomData)
    }
}

impl<T: Type, R: SchemaRules> Type for Documented<T, R> {
    const IS_REQUIRED: bool = T::IS_REQUIRED;
    type RawValueType = T::RawValueType;
    type RawElementValueType = T::RawElementValueType;

    fn name() -> Cow<'static, str> {
        T::name()
    }

    fn schema_ref() -> MetaSchemaRef {
        R::schema(T::schema_ref())
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        self.0.as_raw_value()
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        self.0.raw_element_iter()
    }
}

impl<T: ParseFromJSON, R: SchemaRules> ParseFromJSON for Documented<T, R> {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        if let Some(field) = non_text_field(value.as_ref(), R::text_fields()) {
            return Err(ParseError::custom(format!("`{field}` must be text")));
        }
        T::parse_from_json(value)
            .map(|value| Self(value, PhantomData))
            .map_err(ParseError::propagate)
    }
}

impl<T: ParseFromParameter, R: SchemaRules> ParseFromParameter for Documented<T, R> {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        T::parse_from_parameter(value)
            .map(|value| Self(value, PhantomData))
            .map_err(ParseError::propagate)
    }
}

impl<T: ToJSON, R: SchemaRules> ToJSON for Documented<T, R> {
    fn to_json(&self) -> Option<Value> {
        self.0.to_json()
    }
}

/// Characters the core refuses in user text: controls, bidi controls and
/// invisible (default-ignorable) characters of the Basic Multilingual Plane.
const REFUSED_CHARACTERS: &str = r"\x00-\x1F\x7F-\x9F\xAD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u2028-\u202E\u2060-\u206F\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFFB";

/// User text as the core keeps it: no refused characters, and no
/// whitespace at either end (the core trims it, so lengths are counted
/// without it).
fn text_pattern() -> String {
    format!("^[^\\s{REFUSED_CHARACTERS}](?:[^{REFUSED_CHARACTERS}]*[^\\s{REFUSED_CHARACTERS}])?$")
}

/// User text of `min` to `max` characters.
fn text_schema(min: usize, max: usize) -> MetaSchema {
    MetaSchema {
        min_length: Some(min),
        max_length: Some(max),
        pattern: Some(text_pattern()),
        ..MetaSchema::new("string")
    }
}

/// An approval bound: from 1 to the most options a ballot has.
fn choice_bound() -> MetaSchema {
    MetaSchema {
        minimum: Some(1.0),
        maximum: Some(MAX_OPTIONS as f64),
        nullable: true,
        ..MetaSchema::new("integer")
    }
}

/// An inline schema.
pub(super) fn inline(schema: MetaSchema) -> MetaSchemaRef {
    MetaSchemaRef::Inline(Box::new(schema))
}

/// An object schema stating only these properties' rules.
pub(super) fn object(properties: Vec<(&'static str, MetaSchema)>) -> MetaSchema {
    MetaSchema {
        properties: properties
            .into_iter()
            .map(|(name, schema)| (name, inline(schema)))
            .collect(),
        ..MetaSchema::new("object")
    }
}

/// A ballot to create: the rules of each field, and at least 2 options, or
/// 1 when write-ins are allowed.
#[derive(Debug)]
pub(crate) struct CreateRules;

impl SchemaRules for CreateRules {
    fn text_fields() -> &'static [&'static str] {
        &["measure", "options", "scheduled_start"]
    }

    fn schema(plain: MetaSchemaRef) -> MetaSchemaRef {
        let fields = inline(object(vec![
            ("measure", text_schema(MEASURE_MIN_CHARS, MEASURE_MAX_CHARS)),
            (
                "options",
                MetaSchema {
                    min_items: Some(1),
                    max_items: Some(MAX_OPTIONS),
                    unique_items: Some(true),
                    items: Some(Box::new(inline(text_schema(1, LABEL_MAX_CHARS)))),
                    ..MetaSchema::new("array")
                },
            ),
            (
                "scheduled_start",
                MetaSchema {
                    format: Some("date-time"),
                    nullable: true,
                    ..MetaSchema::new("string")
                },
            ),
            (
                "window_minutes",
                MetaSchema {
                    minimum: Some(0.0),
                    maximum: Some(f64::from(MAX_WINDOW_MINUTES)),
                    ..MetaSchema::new("integer")
                },
            ),
            // 1 <= min_choices <= max_choices <= the number of options.
            ("min_choices", choice_bound()),
            ("max_choices", choice_bound()),
        ]));
        let write_ins = inline(MetaSchema {
            required: vec!["allow_write_in"],
            properties: vec![(
                "allow_write_in",
                inline(MetaSchema {
                    enum_items: vec![Value::Bool(true)],
                    ..MetaSchema::new("boolean")
                }),
            )],
            ..MetaSchema::new("object")
        });
        let two_options = inline(object(vec![(
            "options",
            MetaSchema {
                min_items: Some(2),
                ..MetaSchema::new("array")
            },
        )]));
        inline(MetaSchema {
            all_of: vec![plain, fields],
            any_of: vec![write_ins, two_options],
            ..MetaSchema::new("object")
        })
    }
}

/// A vote names exactly one of `option_id` and `write_in` (1 to 64
/// characters); the other is absent or null.
#[derive(Debug)]
pub(crate) struct VoteRules;

impl SchemaRules for VoteRules {
    fn text_fields() -> &'static [&'static str] {
        &["write_in"]
    }

    fn schema(plain: MetaSchemaRef) -> MetaSchemaRef {
        let absent = || MetaSchema {
            enum_items: vec![Value::Null],
            nullable: true,
            ..MetaSchema::ANY
        };
        let option_id = || MetaSchema {
            // Options are numbered from 1.
            minimum: Some(1.0),
            maximum: Some(f64::from(u32::MAX)),
            ..MetaSchema::new_with_format("integer", "uint32")
        };
        let option_ids = || MetaSchema {
            items: Some(Box::new(inline(option_id()))),
            max_items: Some(MAX_OPTIONS),
            ..MetaSchema::new("array")
        };
        let by_option = inline(MetaSchema {
            required: vec!["option_id"],
            ..object(vec![
                ("option_id", option_id()),
                ("write_in", absent()),
                ("option_ids", absent()),
                ("ranking", absent()),
            ])
        });
        let by_write_in = inline(MetaSchema {
            required: vec!["write_in"],
            ..object(vec![
                ("write_in", text_schema(1, LABEL_MAX_CHARS)),
                ("option_id", absent()),
                ("option_ids", absent()),
                ("ranking", absent()),
            ])
        });
        // Approval: the options chosen, and a write-in among them if the
        // ballot takes write-ins.
        let by_options = inline(MetaSchema {
            required: vec!["option_ids"],
            ..object(vec![
                ("option_ids", option_ids()),
                (
                    "write_in",
                    MetaSchema {
                        nullable: true,
                        ..text_schema(1, LABEL_MAX_CHARS)
                    },
                ),
                ("option_id", absent()),
                ("ranking", absent()),
            ])
        });
        // Ranked: most preferred first, each option at most once.
        let by_ranking = inline(MetaSchema {
            required: vec!["ranking"],
            ..object(vec![
                (
                    "ranking",
                    MetaSchema {
                        min_items: Some(1),
                        unique_items: Some(true),
                        ..option_ids()
                    },
                ),
                ("option_id", absent()),
                ("write_in", absent()),
                ("option_ids", absent()),
            ])
        });
        inline(MetaSchema {
            all_of: vec![plain],
            one_of: vec![by_option, by_write_in, by_options, by_ranking],
            ..MetaSchema::new("object")
        })
    }
}

/// A ballot id: 22 characters of URL-safe base64 encoding 16 bytes, so
/// the last one carries no stray bits. Any other id is `404`.
#[derive(Debug)]
pub(crate) struct BallotIdRules;

impl SchemaRules for BallotIdRules {
    fn schema(plain: MetaSchemaRef) -> MetaSchemaRef {
        plain.merge(MetaSchema {
            min_length: Some(22),
            max_length: Some(22),
            pattern: Some("^[A-Za-z0-9_-]{21}[AQgw]$".to_owned()),
            ..MetaSchema::ANY
        })
    }
}

/// A ballot id in a path.
pub(super) type BallotIdParam = Documented<String, BallotIdRules>;
