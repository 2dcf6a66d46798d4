//! The protobuf wire format, as far as ONNX files need it: varints, 32-bit floats
//! and length-delimited fields (strings, bytes, nested messages).
//!
//! Written by hand rather than through a protobuf crate: ONNX needs a dozen
//! messages and four encodings, and a code generator would cost more build time
//! than this file costs reading. A nested message is written into its own buffer
//! and copied into its parent behind its length, which protobuf puts first; the
//! copies cost a few milliseconds for a model of megabytes.

/// Wire types (protobuf encoding guide, "Message Structure").
const VARINT: u8 = 0;
const LENGTH_DELIMITED: u8 = 2;
const FIXED32: u8 = 5;

/// A protobuf message being written, field by field, in the order given.
#[derive(Clone, Debug, Default)]
pub(crate) struct Message {
    bytes: Vec<u8>,
}

impl Message {
    /// An empty message.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// The encoded message.
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    fn key(&mut self, field: u32, wire_type: u8) {
        put_varint(&mut self.bytes, (u64::from(field) << 3) | u64::from(wire_type));
    }

    /// An `int64`/`int32`/enum field. Negative values take ten bytes, as protobuf
    /// encodes them (two's complement, no zigzag: these are not `sint` fields).
    pub(crate) fn int(&mut self, field: u32, value: i64) -> &mut Self {
        self.key(field, VARINT);
        put_varint(&mut self.bytes, value as u64);
        self
    }

    /// A `float` field.
    pub(crate) fn float(&mut self, field: u32, value: f32) -> &mut Self {
        self.key(field, FIXED32);
        self.bytes.extend_from_slice(&value.to_le_bytes());
        self
    }

    /// A `bytes` field.
    pub(crate) fn bytes(&mut self, field: u32, value: &[u8]) -> &mut Self {
        self.key(field, LENGTH_DELIMITED);
        put_varint(&mut self.bytes, value.len() as u64);
        self.bytes.extend_from_slice(value);
        self
    }

    /// A `string` field.
    pub(crate) fn string(&mut self, field: u32, value: &str) -> &mut Self {
        self.bytes(field, value.as_bytes())
    }

    /// A nested message field.
    pub(crate) fn message(&mut self, field: u32, value: &Message) -> &mut Self {
        self.bytes(field, &value.bytes)
    }
}

/// Appends `value` as a base-128 varint, low groups first.
fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

#[cfg(test)]
mod tests {
    use super::Message;

    #[test]
    fn fields_encode_as_the_protobuf_guide_shows() {
        // The guide's examples: field 1 = 150 is 08 96 01; field 2 = "testing".
        assert_eq!(
            Message::new().int(1, 150).clone().into_bytes(),
            [0x08, 0x96, 0x01]
        );
        let mut m = Message::new();
        m.string(2, "testing");
        assert_eq!(m.into_bytes(), b"\x12\x07testing");
        let mut m = Message::new();
        m.float(3, 1.0);
        assert_eq!(m.into_bytes(), [0x1d, 0, 0, 0x80, 0x3f]);
    }

    #[test]
    fn negative_ints_take_ten_bytes() {
        let mut m = Message::new();
        m.int(1, -1);
        let bytes = m.into_bytes();
        assert_eq!(bytes.len(), 11);
        assert_eq!(bytes[10], 0x01);
    }

    #[test]
    fn nested_messages_are_prefixed_by_their_length() {
        let mut inner = Message::new();
        inner.int(1, 150);
        let mut outer = Message::new();
        outer.message(3, &inner);
        assert_eq!(outer.into_bytes(), [0x1a, 0x03, 0x08, 0x96, 0x01]);
    }
}
