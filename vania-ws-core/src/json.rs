//! Encoding to JSON: the bytes `serde_json::to_string` writes, with strings scanned many bytes
//! at a time.
//!
//! Every frame the server sends is encoded here, once per send. serde_json looks at a string one
//! byte at a time, so a 1 KiB text payload cost about half of the instructions of a whole echo
//! (BENCHMARKS.md, "The 1 KiB echo"). This writer looks for the three things JSON must escape
//! (control characters, `"` and `\`) 32 bytes per step, with a loop the compiler turns into
//! vector instructions, then eight bytes per step in one word, and copies clean runs whole.
//!
//! Everything else keeps serde_json's exact behaviour, because it is serde_json's code that runs:
//! numbers are written by serde_json's own serializer, and a map key that is not a string is
//! encoded by serde_json too (with its rules and its errors). Only the string escaping, the
//! punctuation between values, `true`, `false` and `null` are written here; the tests compare
//! the output with serde_json's, byte for byte. A [`RawValue`](serde_json::value::RawValue) is
//! written as it is, as serde_json writes it (which is why sonic-rs, which writes it as an
//! object, was not used).
//!
//! One difference, on purpose: a sequence or map whose `Serialize` says it has no elements and
//! then gives some. serde_json writes invalid JSON for it (`[],1`); this writer writes the
//! elements (`[1]`).

use std::fmt::Display;

use serde::ser::{self, Impossible, Serialize};
use serde_json::Error;

/// serde_json's private marker of a `RawValue`: a struct of that name with one field of that
/// name, whose string is JSON text to be written as it is.
const RAW_VALUE_TOKEN: &str = "$serde_json::private::RawValue";
/// The same for a `Number` when serde_json's `arbitrary_precision` feature is on (a feature some
/// other crate of the application may turn on). A struct of this name is written raw with the
/// feature off too, where serde_json would write an object: only a type imitating serde_json's
/// private name could tell.
const NUMBER_TOKEN: &str = "$serde_json::private::Number";

/// `serde_json::to_string(value)`, faster on strings.
pub(crate) fn to_string<T: ?Sized + Serialize>(value: &T) -> Result<String, Error> {
    let mut writer = Writer {
        out: String::with_capacity(128),
    };
    value.serialize(&mut writer)?;
    Ok(writer.out)
}

struct Writer {
    out: String,
}

impl Writer {
    /// Writes a scalar with serde_json's own serializer, into a stack buffer: numbers (with
    /// serde_json's integer and float formatting, and `null` for a non-finite float) stay
    /// exactly serde_json's.
    fn scalar(
        &mut self,
        write: impl FnOnce(&mut serde_json::Serializer<&mut &mut [u8]>) -> Result<(), Error>,
    ) -> Result<(), Error> {
        // The longest scalar is an i128 (40 characters).
        let mut buf = [0u8; 48];
        let mut rest = &mut buf[..];
        write(&mut serde_json::Serializer::new(&mut rest))?;
        let len = 48 - rest.len();
        let text = std::str::from_utf8(&buf[..len]).expect("serde_json writes UTF-8");
        self.out.push_str(text);
        Ok(())
    }
}

/// Eight copies of `byte`, one per byte of a word.
const fn splat(byte: u8) -> u64 {
    u64::from_ne_bytes([byte; 8])
}

/// The bytes of `word` (little-endian) that must be escaped, below 0x20, `"` or `\`, as their
/// high bits. Each test is the classic "has a byte less than n" (a zero byte, for the two
/// equalities). A match can also flag bytes after it, through a borrow, but never one before
/// it: the lowest flag is always a real match, and no flag at all means none.
#[inline]
fn escape_mask(word: u64) -> u64 {
    let has_zero = |v: u64| v.wrapping_sub(splat(1)) & !v;
    let control = word.wrapping_sub(splat(0x20)) & !word;
    let quote = has_zero(word ^ splat(b'"'));
    let backslash = has_zero(word ^ splat(b'\\'));
    (control | quote | backslash) & splat(0x80)
}

/// Whether JSON must escape `byte` (without branches, so that a loop of it vectorizes).
#[inline]
const fn must_escape(byte: u8) -> bool {
    (byte < 0x20) | (byte == b'"') | (byte == b'\\')
}

/// Bytes looked at per step of the first pass. Inside a block the loop has no early exit, so
/// the compiler turns it into vector instructions; 32 counted fewer instructions than 16 or 64
/// over short and 1 KiB strings (BENCHMARKS.md).
const BLOCK: usize = 32;

/// [`must_escape`] for every byte: one load per byte of a short tail instead of three tests.
static MUST_ESCAPE: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        table[byte] = must_escape(byte as u8);
        byte += 1;
    }
    table
};

/// The index of the first byte at or after `from` that must be escaped, or `bytes.len()`:
/// [`BLOCK`] bytes at a time, then eight at a time, then the last few one by one.
#[inline]
fn next_escape(bytes: &[u8], from: usize) -> usize {
    let mut blocks = bytes[from..].chunks_exact(BLOCK);
    for (n, block) in blocks.by_ref().enumerate() {
        if block
            .iter()
            .fold(false, |any, &byte| any | must_escape(byte))
        {
            let at = block
                .iter()
                .position(|&byte| must_escape(byte))
                .expect("the block has one");
            return from + n * BLOCK + at;
        }
    }
    let from = bytes.len() - blocks.remainder().len();
    let mut words = bytes[from..].chunks_exact(8);
    for (n, word) in words.by_ref().enumerate() {
        let mask = escape_mask(u64::from_le_bytes(word.try_into().expect("eight bytes")));
        if mask != 0 {
            return from + n * 8 + mask.trailing_zeros() as usize / 8;
        }
    }
    let tail = words.remainder();
    let tail_start = bytes.len() - tail.len();
    tail.iter()
        .position(|&byte| MUST_ESCAPE[usize::from(byte)])
        .map_or(bytes.len(), |i| tail_start + i)
}

/// The escape of `byte`, as serde_json writes it, or `None` when it needs none.
#[inline]
fn escape(byte: u8, hex: &mut [u8; 6]) -> Option<&str> {
    Some(match byte {
        b'"' => "\\\"",
        b'\\' => "\\\\",
        0x08 => "\\b",
        b'\t' => "\\t",
        b'\n' => "\\n",
        0x0c => "\\f",
        b'\r' => "\\r",
        0x00..=0x1f => {
            const DIGITS: &[u8; 16] = b"0123456789abcdef";
            *hex = [
                b'\\',
                b'u',
                b'0',
                b'0',
                DIGITS[usize::from(byte >> 4)],
                DIGITS[usize::from(byte & 0xf)],
            ];
            std::str::from_utf8(hex).expect("ASCII")
        }
        _ => return None,
    })
}

/// Appends `s` as a JSON string: clean runs are copied whole.
fn push_string(out: &mut String, s: &str) {
    let bytes = s.as_bytes();
    if bytes.len() > 64 {
        // Room for the string and both quotes at once, so that the closing quote cannot grow
        // the buffer (and copy it) a second time. Short strings skip the extra check.
        out.reserve(bytes.len() + 2);
    }
    out.push('"');
    let mut hex = [0u8; 6];
    // `done` is the first byte not yet written. It only ever follows an ASCII byte, so slicing
    // `s` there is always valid.
    let mut done = 0;
    loop {
        let at = next_escape(bytes, done);
        out.push_str(&s[done..at]);
        match bytes.get(at) {
            Some(&byte) => out.push_str(escape(byte, &mut hex).expect("an escaped byte")),
            None => break,
        }
        done = at + 1;
    }
    out.push('"');
}

impl<'a> ser::Serializer for &'a mut Writer {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Seq<'a>;
    type SerializeTuple = Seq<'a>;
    type SerializeTupleStruct = Seq<'a>;
    type SerializeTupleVariant = Seq<'a>;
    type SerializeMap = Map<'a>;
    type SerializeStruct = Struct<'a>;
    type SerializeStructVariant = Map<'a>;

    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.out.push_str(if v { "true" } else { "false" });
        Ok(())
    }

    fn serialize_i8(self, v: i8) -> Result<(), Error> {
        self.scalar(|s| ser::Serializer::serialize_i8(s, v))
    }

    fn serialize_i16(self, v: i16) -> Result<(), Error> {
        self.scalar(|s| ser::Serializer::serialize_i16(s, v))
    }

    fn serialize_i32(self, v: i32) -> Result<(), Error> {
        self.scalar(|s| ser::Serializer::serialize_i32(s, v))
    }

    fn serialize_i64(self, v: i64) -> Result<(), Error> {
        self.scalar(|s| ser::Serializer::serialize_i64(s, v))
    }

    fn serialize_i128(self, v: i128) -> Result<(), Error> {
        self.scalar(|s| ser::Serializer::serialize_i128(s, v))
    }

    fn serialize_u8(self, v: u8) -> Result<(), Error> {
        self.scalar(|s| ser::Serializer::serialize_u8(s, v))
    }

    fn serialize_u16(self, v: u16) -> Result<(), Error> {
        self.scalar(|s| ser::Serializer::serialize_u16(s, v))
    }

    fn serialize_u32(self, v: u32) -> Result<(), Error> {
        self.scalar(|s| ser::Serializer::serialize_u32(s, v))
    }

    fn serialize_u64(self, v: u64) -> Result<(), Error> {
        self.scalar(|s| ser::Serializer::serialize_u64(s, v))
    }

    fn serialize_u128(self, v: u128) -> Result<(), Error> {
        self.scalar(|s| ser::Serializer::serialize_u128(s, v))
    }

    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        self.scalar(|s| ser::Serializer::serialize_f32(s, v))
    }

    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        self.scalar(|s| ser::Serializer::serialize_f64(s, v))
    }

    fn serialize_char(self, v: char) -> Result<(), Error> {
        push_string(&mut self.out, v.encode_utf8(&mut [0; 4]));
        Ok(())
    }

    fn serialize_str(self, v: &str) -> Result<(), Error> {
        push_string(&mut self.out, v);
        Ok(())
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        // serde_json writes bytes as an array of numbers.
        use ser::SerializeSeq as _;
        let mut seq = self.serialize_seq(Some(v.len()))?;
        for byte in v {
            seq.serialize_element(byte)?;
        }
        seq.end()
    }

    fn serialize_none(self) -> Result<(), Error> {
        self.serialize_unit()
    }

    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<(), Error> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), Error> {
        self.out.push_str("null");
        Ok(())
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Error> {
        self.serialize_unit()
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), Error> {
        self.serialize_str(variant)
    }

    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.out.push('{');
        push_string(&mut self.out, variant);
        self.out.push(':');
        value.serialize(&mut *self)?;
        self.out.push('}');
        Ok(())
    }

    fn serialize_seq(self, _len: Option<usize>) -> Result<Seq<'a>, Error> {
        self.out.push('[');
        Ok(Seq {
            w: self,
            first: true,
            close: "]",
        })
    }

    fn serialize_tuple(self, len: usize) -> Result<Seq<'a>, Error> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_struct(self, _name: &'static str, len: usize) -> Result<Seq<'a>, Error> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Seq<'a>, Error> {
        self.out.push('{');
        push_string(&mut self.out, variant);
        self.out.push_str(":[");
        Ok(Seq {
            w: self,
            first: true,
            close: "]}",
        })
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<Map<'a>, Error> {
        self.out.push('{');
        Ok(Map {
            w: self,
            first: true,
            close: "}",
        })
    }

    fn serialize_struct(self, name: &'static str, _len: usize) -> Result<Struct<'a>, Error> {
        if name == RAW_VALUE_TOKEN || name == NUMBER_TOKEN {
            return Ok(Struct::Raw(self));
        }
        self.out.push('{');
        Ok(Struct::Fields(Map {
            w: self,
            first: true,
            close: "}",
        }))
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Map<'a>, Error> {
        self.out.push('{');
        push_string(&mut self.out, variant);
        self.out.push_str(":{");
        Ok(Map {
            w: self,
            first: true,
            close: "}}",
        })
    }
}

/// An array being written (also a tuple, and a tuple variant's array).
struct Seq<'a> {
    w: &'a mut Writer,
    first: bool,
    close: &'static str,
}

impl Seq<'_> {
    fn element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Error> {
        if !std::mem::take(&mut self.first) {
            self.w.out.push(',');
        }
        value.serialize(&mut *self.w)
    }

    fn finish(self) -> Result<(), Error> {
        self.w.out.push_str(self.close);
        Ok(())
    }
}

/// The four array-shaped compounds of serde, all written by [`Seq`].
macro_rules! seq_compound {
    ($($trait:ident::$method:ident),* $(,)?) => {
        $(impl ser::$trait for Seq<'_> {
            type Ok = ();
            type Error = Error;

            fn $method<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Error> {
                self.element(value)
            }

            fn end(self) -> Result<(), Error> {
                self.finish()
            }
        })*
    };
}

seq_compound!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field,
);

/// An object being written (also a struct, and a struct variant's object).
struct Map<'a> {
    w: &'a mut Writer,
    first: bool,
    close: &'static str,
}

impl Map<'_> {
    fn comma(&mut self) {
        if !std::mem::take(&mut self.first) {
            self.w.out.push(',');
        }
    }

    fn field<T: ?Sized + Serialize>(&mut self, key: &str, value: &T) -> Result<(), Error> {
        self.comma();
        push_string(&mut self.w.out, key);
        self.w.out.push(':');
        value.serialize(&mut *self.w)
    }

    fn finish(self) -> Result<(), Error> {
        self.w.out.push_str(self.close);
        Ok(())
    }
}

impl ser::SerializeMap for Map<'_> {
    type Ok = ();
    type Error = Error;

    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Result<(), Error> {
        self.comma();
        match key.serialize(Key(&mut self.w.out)) {
            Ok(()) => Ok(()),
            Err(KeyError::Json(err)) => Err(err),
            Err(KeyError::NotAString) => {
                self.w.out.push_str(&serde_json_key(key)?);
                Ok(())
            }
        }
    }

    fn serialize_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Error> {
        self.w.out.push(':');
        value.serialize(&mut *self.w)
    }

    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

impl ser::SerializeStructVariant for Map<'_> {
    type Ok = ();
    type Error = Error;

    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.field(key, value)
    }

    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

/// A struct being written: its fields as an object, or, for serde_json's raw values, the one
/// field's text as it is.
enum Struct<'a> {
    Fields(Map<'a>),
    Raw(&'a mut Writer),
}

impl ser::SerializeStruct for Struct<'_> {
    type Ok = ();
    type Error = Error;

    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        match self {
            Struct::Fields(map) => map.field(key, value),
            // serde_json's own check: the raw value's only field is its token. Anything else
            // (a tag field that serde adds to an internally tagged enum) is its error too.
            Struct::Raw(w) if key == RAW_VALUE_TOKEN || key == NUMBER_TOKEN => {
                value.serialize(RawText(&mut w.out))
            }
            Struct::Raw(_) => Err(ser::Error::custom("expected value")),
        }
    }

    fn end(self) -> Result<(), Error> {
        match self {
            Struct::Fields(map) => map.finish(),
            Struct::Raw(_) => Ok(()),
        }
    }
}

/// A map key that is a string (or a char, a unit variant, or a newtype of one) is escaped here;
/// any other key is left to serde_json (`NotAString`), which quotes numbers and booleans and
/// refuses the rest with its own error.
struct Key<'a>(&'a mut String);

#[derive(Debug)]
enum KeyError {
    NotAString,
    Json(Error),
}

impl Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyError::NotAString => f.write_str("key must be a string"),
            KeyError::Json(err) => err.fmt(f),
        }
    }
}

impl std::error::Error for KeyError {}

impl ser::Error for KeyError {
    fn custom<T: Display>(msg: T) -> Self {
        KeyError::Json(ser::Error::custom(msg))
    }
}

/// A key serde_json's way: the text between `{` and `:null}` of a one-entry object.
fn serde_json_key<T: ?Sized + Serialize>(key: &T) -> Result<String, Error> {
    struct OneEntry<'a, T: ?Sized>(&'a T);
    impl<T: ?Sized + Serialize> Serialize for OneEntry<'_, T> {
        fn serialize<S: ser::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            use ser::SerializeMap as _;
            let mut map = serializer.serialize_map(Some(1))?;
            map.serialize_entry(self.0, &())?;
            map.end()
        }
    }
    let object = serde_json::to_string(&OneEntry(key))?;
    Ok(object[1..object.len() - ":null}".len()].to_owned())
}

/// Methods of a serializer that accepts only some kinds of value: each of these answers `$err`.
macro_rules! refuse {
    ($err:expr; $($method:ident($($ty:ty),*)),* $(,)?) => {
        $(fn $method(self, $(_: $ty),*) -> Result<Self::Ok, Self::Error> {
            Err($err)
        })*
    };
}

/// The scalar methods [`refuse`] writes for every kind of scalar but strings.
macro_rules! refuse_scalars {
    ($err:expr) => {
        refuse!($err;
            serialize_bool(bool),
            serialize_i8(i8),
            serialize_i16(i16),
            serialize_i32(i32),
            serialize_i64(i64),
            serialize_i128(i128),
            serialize_u8(u8),
            serialize_u16(u16),
            serialize_u32(u32),
            serialize_u64(u64),
            serialize_u128(u128),
            serialize_f32(f32),
            serialize_f64(f64),
            serialize_bytes(&[u8]),
            serialize_none(),
            serialize_unit(),
            serialize_unit_struct(&'static str),
        );
    };
}

/// The compound methods, which both restricted serializers refuse.
macro_rules! refuse_compounds {
    ($err:expr) => {
        fn serialize_some<T: ?Sized + Serialize>(self, _value: &T) -> Result<(), Self::Error> {
            Err($err)
        }

        fn serialize_newtype_variant<T: ?Sized + Serialize>(
            self,
            _name: &'static str,
            _index: u32,
            _variant: &'static str,
            _value: &T,
        ) -> Result<(), Self::Error> {
            Err($err)
        }

        fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, Self::Error> {
            Err($err)
        }

        fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, Self::Error> {
            Err($err)
        }

        fn serialize_tuple_struct(
            self,
            _name: &'static str,
            _len: usize,
        ) -> Result<Self::SerializeTupleStruct, Self::Error> {
            Err($err)
        }

        fn serialize_tuple_variant(
            self,
            _name: &'static str,
            _index: u32,
            _variant: &'static str,
            _len: usize,
        ) -> Result<Self::SerializeTupleVariant, Self::Error> {
            Err($err)
        }

        fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, Self::Error> {
            Err($err)
        }

        fn serialize_struct(
            self,
            _name: &'static str,
            _len: usize,
        ) -> Result<Self::SerializeStruct, Self::Error> {
            Err($err)
        }

        fn serialize_struct_variant(
            self,
            _name: &'static str,
            _index: u32,
            _variant: &'static str,
            _len: usize,
        ) -> Result<Self::SerializeStructVariant, Self::Error> {
            Err($err)
        }
    };
}

impl ser::Serializer for Key<'_> {
    type Ok = ();
    type Error = KeyError;
    type SerializeSeq = Impossible<(), KeyError>;
    type SerializeTuple = Impossible<(), KeyError>;
    type SerializeTupleStruct = Impossible<(), KeyError>;
    type SerializeTupleVariant = Impossible<(), KeyError>;
    type SerializeMap = Impossible<(), KeyError>;
    type SerializeStruct = Impossible<(), KeyError>;
    type SerializeStructVariant = Impossible<(), KeyError>;

    fn serialize_str(self, v: &str) -> Result<(), KeyError> {
        push_string(self.0, v);
        Ok(())
    }

    fn serialize_char(self, v: char) -> Result<(), KeyError> {
        push_string(self.0, v.encode_utf8(&mut [0; 4]));
        Ok(())
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), KeyError> {
        push_string(self.0, variant);
        Ok(())
    }

    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), KeyError> {
        value.serialize(self)
    }

    refuse_scalars!(KeyError::NotAString);
    refuse_compounds!(KeyError::NotAString);
}

/// The field of a raw value: JSON text, written as it is.
struct RawText<'a>(&'a mut String);

impl ser::Serializer for RawText<'_> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Impossible<(), Error>;
    type SerializeTuple = Impossible<(), Error>;
    type SerializeTupleStruct = Impossible<(), Error>;
    type SerializeTupleVariant = Impossible<(), Error>;
    type SerializeMap = Impossible<(), Error>;
    type SerializeStruct = Impossible<(), Error>;
    type SerializeStructVariant = Impossible<(), Error>;

    fn serialize_str(self, v: &str) -> Result<(), Error> {
        self.0.push_str(v);
        Ok(())
    }

    refuse_scalars!(not_raw_text());
    refuse!(not_raw_text();
        serialize_char(char),
    );
    refuse_compounds!(not_raw_text());

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
    ) -> Result<(), Error> {
        Err(not_raw_text())
    }

    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        _value: &T,
    ) -> Result<(), Error> {
        Err(not_raw_text())
    }
}

fn not_raw_text() -> Error {
    ser::Error::custom("a serde_json raw value must hold its JSON text as a string")
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use serde::Serialize;
    use serde_json::json;
    use serde_json::value::RawValue;

    use super::*;

    /// Ours and serde_json's, output or error message.
    #[track_caller]
    fn same<T: ?Sized + Serialize>(value: &T) {
        let ours = to_string(value).map_err(|e| e.to_string());
        let theirs = serde_json::to_string(value).map_err(|e| e.to_string());
        assert_eq!(ours, theirs);
    }

    #[test]
    fn the_word_test_finds_the_first_byte_to_escape_for_every_byte_and_adjacent_pair() {
        let first = |word: [u8; 8]| word.iter().position(|&b| must_escape(b));
        let found = |word: [u8; 8]| {
            let mask = escape_mask(u64::from_le_bytes(word));
            (mask != 0).then(|| mask.trailing_zeros() as usize / 8)
        };
        for at in 0..8 {
            for b in 0..=255u8 {
                let mut word = [b'a'; 8];
                word[at] = b;
                assert_eq!(found(word), first(word), "{b:#x} at {at}");
            }
        }
        for at in 0..7 {
            for b1 in 0..=255u8 {
                for b2 in 0..=255u8 {
                    let mut word = [0xffu8; 8];
                    word[at] = b1;
                    word[at + 1] = b2;
                    assert_eq!(found(word), first(word), "{b1:#x} {b2:#x} at {at}");
                }
            }
        }
    }

    #[test]
    fn strings_match_serde_json_with_every_special_character_at_every_position() {
        let specials: Vec<char> = (0u8..0x80)
            .map(char::from)
            .chain(['é', '€', '😀', '\u{7f}', '\u{80}', '\u{2028}', '\u{fffd}'])
            .collect();
        // Past 40 bytes (blocks and the words after them), fewer kinds of special.
        let few = ['\0', '\u{1f}', '"', '\\', '\n', 'é'];
        for len in 0..2 * BLOCK + 10 {
            let specials = if len < 40 { &specials[..] } else { &few[..] };
            for at in 0..len {
                for &c in specials {
                    let s: String = (0..len).map(|i| if i == at { c } else { 'x' }).collect();
                    same(&s);
                }
            }
        }
    }

    #[test]
    fn random_strings_match_serde_json() {
        let alphabet: Vec<char> = "ab \"\\\n\t\r\u{1}\u{1f}\u{8}\u{c}/é€😀\u{7f}"
            .chars()
            .collect();
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..5_000 {
            let len = (next() % 100) as usize;
            let s: String = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            same(&s);
            same(&json!({ s.clone(): [s.clone(), { "k": s }] }));
        }
    }

    #[test]
    fn values_match_serde_json() {
        same(&json!(null));
        same(&json!({
            "a": [1, -1, i64::MIN, u64::MAX, 0.1, -0.0, 1e300, 2.5e-308, true, false, null],
            "nested": {"empty": {}, "list": [], "deep": [[[{"x": "y\n"}]]]},
            "text": "quote \" backslash \\ slash / tab \t",
        }));
    }

    #[derive(Serialize, PartialEq, Eq, PartialOrd, Ord)]
    struct Unit;

    #[derive(Serialize)]
    struct Tuple(u8, &'static str);

    #[derive(Serialize, PartialEq, Eq, Hash)]
    struct Newtype(String);

    #[derive(Serialize, PartialEq, Eq, PartialOrd, Ord)]
    enum Variant {
        Unit,
        #[serde(rename = "re\"named")]
        Renamed,
        Newtype(u32),
        Tuple(u8, i8),
        Struct {
            a: u8,
            b: Option<u8>,
        },
    }

    #[derive(Serialize)]
    struct Everything<'a> {
        #[serde(rename = "with \"quotes\"")]
        quoted: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        skipped: Option<u8>,
        present: Option<u8>,
        unit: (),
        unit_struct: Unit,
        tuple: Tuple,
        newtype: Newtype,
        variants: Vec<Variant>,
        chars: [char; 3],
        small: (i8, i16, i32, u16, u32),
        wide: (i128, u128, i128),
        floats: (f32, f32, f64, f64, f64, f64),
        raw: &'a RawValue,
        boxed_raw: Box<RawValue>,
        #[serde(flatten)]
        extra: BTreeMap<String, u8>,
    }

    #[test]
    fn every_kind_of_value_matches_serde_json() {
        let raw = RawValue::from_string(r#"{ "kept" :  [1, 2] }"#.to_owned()).unwrap();
        same(&Everything {
            quoted: true,
            skipped: None,
            present: None,
            unit: (),
            unit_struct: Unit,
            tuple: Tuple(7, "seven"),
            newtype: Newtype("new\u{0}type".into()),
            variants: vec![
                Variant::Unit,
                Variant::Renamed,
                Variant::Newtype(3),
                Variant::Tuple(1, -1),
                Variant::Struct { a: 1, b: None },
            ],
            chars: ['a', '"', '\u{1}'],
            small: (i8::MIN, i16::MAX, i32::MIN, u16::MAX, u32::MAX),
            wide: (i128::MIN, u128::MAX, i128::MAX),
            floats: (
                0.1,
                f32::NAN,
                0.1,
                f64::INFINITY,
                f64::NEG_INFINITY,
                123456789.125,
            ),
            raw: &raw,
            boxed_raw: raw.clone(),
            extra: BTreeMap::from([("flat".to_owned(), 1)]),
        });
    }

    #[test]
    fn a_raw_value_in_an_internally_tagged_enum_fails_as_in_serde_json() {
        #[derive(Serialize)]
        #[serde(tag = "type")]
        enum Tagged {
            Raw(Box<RawValue>),
        }
        let raw = RawValue::from_string(r#"{"x":1}"#.to_owned()).unwrap();
        same(&Tagged::Raw(raw));
        assert!(to_string(&Tagged::Raw(RawValue::from_string("1".into()).unwrap())).is_err());
    }

    #[test]
    fn bytes_are_an_array_of_numbers_as_in_serde_json() {
        struct Bytes(&'static [u8]);
        impl Serialize for Bytes {
            fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(self.0)
            }
        }
        same(&Bytes(b""));
        same(&Bytes(b"\x00\xffab"));
    }

    #[test]
    fn map_keys_follow_serde_json_rules_and_errors() {
        same(&HashMap::from([(1u32, "one")]));
        same(&BTreeMap::from([(-5i64, 1), (7, 2)]));
        same(&BTreeMap::from([(true, 1), (false, 2)]));
        same(&BTreeMap::from([('"', 1), ('é', 2)]));
        same(&BTreeMap::from([(Variant::Unit, 1), (Variant::Renamed, 2)]));
        same(&BTreeMap::from([(Variant::Newtype(1), 1)]));
        same(&HashMap::from([(Newtype("k\"ey".into()), 1)]));
        same(&BTreeMap::from([(Unit, 1)]));
        same(&BTreeMap::from([(vec![1u8], 1)]));
        same(&BTreeMap::from([(Some("x"), 1)]));
        same(&BTreeMap::from([((), 1)]));
        let float_keys: Vec<(f64, u8)> = vec![(1.5, 1), (f64::NAN, 2)];
        struct Floats(Vec<(f64, u8)>);
        impl Serialize for Floats {
            fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
            }
        }
        same(&Floats(float_keys[..1].to_vec()));
        same(&Floats(float_keys));
    }

    #[test]
    fn a_failing_serialize_impl_fails_the_same_way() {
        struct Fails;
        impl Serialize for Fails {
            fn serialize<S: ser::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
                Err(ser::Error::custom("boom"))
            }
        }
        same(&Fails);
        same(&json!([1, 2]).as_array().map(|_| vec![Some(Fails)]));
        same(&HashMap::from([("k", Fails)]));
        struct FailingKey;
        impl Serialize for FailingKey {
            fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_map([(Fails, 1)])
            }
        }
        same(&FailingKey);
    }
}
