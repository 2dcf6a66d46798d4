//! A protobuf reader small enough to trust by reading, for checking what the ONNX
//! exporter wrote without the writer's own code: a message is a list of
//! `(field number, value)` in file order; the test knows which fields are
//! messages, strings or ints, as a reader of ONNX's `.proto` does.

/// One field's value, by wire type.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'a> {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 1.
    Fixed64(u64),
    /// Wire type 2: a string, bytes, a nested message or a packed list.
    Bytes(&'a [u8]),
    /// Wire type 5.
    Fixed32(u32),
}

/// A decoded message: its fields in order.
#[derive(Clone, Debug)]
pub struct Message<'a> {
    pub fields: Vec<(u32, Value<'a>)>,
}

fn varint(bytes: &[u8], at: &mut usize) -> u64 {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at).expect("varint runs past the end");
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return value;
        }
    }
    panic!("varint longer than 10 bytes");
}

impl<'a> Message<'a> {
    /// Decodes `bytes` as one message; panics on malformed input.
    pub fn parse(bytes: &'a [u8]) -> Message<'a> {
        let mut fields = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let key = varint(bytes, &mut at);
            let field = (key >> 3) as u32;
            let value = match key & 7 {
                0 => Value::Varint(varint(bytes, &mut at)),
                1 => {
                    let v = u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
                    at += 8;
                    Value::Fixed64(v)
                }
                2 => {
                    let len = varint(bytes, &mut at) as usize;
                    let v = &bytes[at..at + len];
                    at += len;
                    Value::Bytes(v)
                }
                5 => {
                    let v = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
                    at += 4;
                    Value::Fixed32(v)
                }
                other => panic!("wire type {other} at byte {at}"),
            };
            fields.push((field, value));
        }
        Message { fields }
    }

    fn all(&self, field: u32) -> impl Iterator<Item = Value<'a>> + '_ {
        self.fields
            .iter()
            .filter(move |(f, _)| *f == field)
            .map(|(_, v)| *v)
    }

    /// Every occurrence of a message field, decoded.
    pub fn messages(&self, field: u32) -> Vec<Message<'a>> {
        self.all(field)
            .map(|v| match v {
                Value::Bytes(b) => Message::parse(b),
                other => panic!("field {field} is {other:?}, not a message"),
            })
            .collect()
    }

    /// The one occurrence of a message field.
    pub fn message(&self, field: u32) -> Message<'a> {
        let mut all = self.messages(field);
        assert_eq!(all.len(), 1, "field {field} occurs {} times", all.len());
        all.remove(0)
    }

    /// Every occurrence of a string field.
    pub fn strings(&self, field: u32) -> Vec<&'a str> {
        self.all(field)
            .map(|v| match v {
                Value::Bytes(b) => std::str::from_utf8(b).expect("UTF-8"),
                other => panic!("field {field} is {other:?}, not a string"),
            })
            .collect()
    }

    /// The string field, or "" when absent (proto3's default).
    pub fn string(&self, field: u32) -> &'a str {
        self.strings(field).last().copied().unwrap_or("")
    }

    /// The raw bytes of a bytes field (empty when absent).
    pub fn bytes(&self, field: u32) -> &'a [u8] {
        match self.all(field).last() {
            Some(Value::Bytes(b)) => b,
            None => &[],
            Some(other) => panic!("field {field} is {other:?}, not bytes"),
        }
    }

    /// Every value of a repeated int64 field, packed or not.
    pub fn ints(&self, field: u32) -> Vec<i64> {
        let mut out = Vec::new();
        for v in self.all(field) {
            match v {
                Value::Varint(i) => out.push(i as i64),
                Value::Bytes(packed) => {
                    let mut at = 0;
                    while at < packed.len() {
                        out.push(varint(packed, &mut at) as i64);
                    }
                }
                other => panic!("field {field} is {other:?}, not an int"),
            }
        }
        out
    }

    /// The int field, or 0 when absent.
    pub fn int(&self, field: u32) -> i64 {
        self.ints(field).last().copied().unwrap_or(0)
    }

    /// The float field (wire type 5), if present.
    pub fn float(&self, field: u32) -> Option<f32> {
        self.all(field).last().map(|v| match v {
            Value::Fixed32(bits) => f32::from_bits(bits),
            other => panic!("field {field} is {other:?}, not a float"),
        })
    }
}
