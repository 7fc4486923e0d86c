//! From HTTP body bytes to decoded objects: framing and one-pass metadata decoding.
