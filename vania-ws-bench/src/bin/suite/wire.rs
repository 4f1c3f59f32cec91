//! The WebSocket wire as the load generator needs it, and no more: the client handshake,
//! masked client frames encoded once, and a streaming parser of server frames that reads only
//! headers (opcode, length) unless asked for a frame's payload.

use std::io;

/// The key of RFC 6455's example. Servers must not rely on keys being unique, and a constant
/// key lets the expected accept value be a constant too.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
/// `base64(sha1(KEY + GUID))`, from RFC 6455 section 1.3.
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
/// Any fixed mask is valid; servers unmask whatever key the frame carries.
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// Opcode of a text frame.
pub(crate) const TEXT: u8 = 0x1;
/// Opcode of a close frame.
pub(crate) const CLOSE: u8 = 0x8;
/// Opcode of a ping frame.
pub(crate) const PING: u8 = 0x9;
/// Opcode of a pong frame.
pub(crate) const PONG: u8 = 0xA;

/// The upgrade request for `path` on `127.0.0.1:port`.
pub(crate) fn handshake_request(path: &str, port: u16) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .into_bytes()
}

/// Checks a complete response head: status 101 and the right accept key.
pub(crate) fn check_handshake_response(head: &[u8]) -> io::Result<()> {
    let text = String::from_utf8_lossy(head);
    let status = text.lines().next().unwrap_or_default();
    if !status.starts_with("HTTP/1.1 101") {
        return Err(io::Error::other(format!("upgrade refused: {status}")));
    }
    let accepted = text.lines().any(|line| {
        line.split_once(':').is_some_and(|(name, value)| {
            name.eq_ignore_ascii_case("sec-websocket-accept") && value.trim() == ACCEPT
        })
    });
    if !accepted {
        return Err(io::Error::other("wrong or missing Sec-WebSocket-Accept"));
    }
    Ok(())
}

/// The end of an HTTP head (`\r\n\r\n`) in `buf`, as the index just past it.
pub(crate) fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// One masked client frame (FIN set), ready to be written as many times as needed.
pub(crate) fn masked_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(payload.len() + 14);
    frame.push(0x80 | opcode);
    match payload.len() {
        len @ 0..=125 => frame.push(0x80 | len as u8),
        len @ 126..=0xffff => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&MASK);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    frame
}

/// A masked text frame.
pub(crate) fn text_frame(text: &str) -> Vec<u8> {
    masked_frame(TEXT, text.as_bytes())
}

/// What the parser reports for one complete server frame.
pub(crate) enum Event<'a> {
    /// A counted text frame: one of the lengths the caller expects (`head` is empty: the
    /// payload is not read), or any complete text frame after [`FrameParser::expect_any_text`]
    /// (`head` is the first [`HEAD_LIMIT`] bytes of its payload).
    Expected { head: &'a [u8] },
    /// Any other frame, with its payload (the first [`CAPTURE_LIMIT`] bytes of it).
    Other {
        /// The frame's opcode (FIN cleared; `fin` says whether it was set).
        opcode: u8,
        /// Whether FIN was set.
        fin: bool,
        /// The payload length announced by the header.
        len: u64,
        /// The payload, truncated to [`CAPTURE_LIMIT`] bytes.
        payload: &'a [u8],
    },
}

/// The longest payload prefix kept for an unexpected frame (enough to read an error frame).
pub(crate) const CAPTURE_LIMIT: usize = 4096;

/// The payload prefix kept for a counted frame in [`FrameParser::expect_any_text`] mode:
/// enough for an envelope's event name, a sender id and a message's sequence number.
pub(crate) const HEAD_LIMIT: usize = 160;

/// A streaming parser of server (unmasked) frames. Data can arrive split anywhere; only the
/// header bytes are looked at for frames of an expected length, so a frame costs a few
/// comparisons whatever its size.
#[derive(Default)]
pub(crate) struct FrameParser {
    /// Header bytes collected so far (at most 14).
    head: [u8; 14],
    head_len: usize,
    /// The current frame, once its header is complete.
    current: Option<Current>,
    /// Text-frame lengths counted without reading the payload; empty: every frame is `Other`.
    expected: Vec<u64>,
    /// Every complete text frame is counted, with the head of its payload.
    any_text: bool,
    capture: Vec<u8>,
}

#[derive(Clone, Copy)]
struct Current {
    opcode: u8,
    fin: bool,
    len: u64,
    remaining: u64,
    expected: bool,
}

impl FrameParser {
    /// Sets the text-frame lengths to count without reading their payload.
    pub(crate) fn expect(&mut self, lengths: &[u64]) {
        self.expected = lengths.to_vec();
        self.any_text = false;
    }

    /// Counts every complete text frame, reporting the first [`HEAD_LIMIT`] bytes of its
    /// payload (for workloads that tell messages apart by a number they carry).
    pub(crate) fn expect_any_text(&mut self) {
        self.expected.clear();
        self.any_text = true;
    }

    /// Feeds received bytes; calls `on_event` for every frame completed by them.
    pub(crate) fn feed(
        &mut self,
        mut data: &[u8],
        mut on_event: impl FnMut(Event<'_>),
    ) -> io::Result<()> {
        while !data.is_empty() {
            let Some(mut current) = self.current else {
                self.read_head(&mut data)?;
                if let Some(current) = self.current
                    && current.remaining == 0
                {
                    self.finish(current, &mut on_event);
                }
                continue;
            };
            let take = (current.remaining.min(data.len() as u64)) as usize;
            let limit = match (current.expected, self.any_text) {
                (false, _) => CAPTURE_LIMIT,
                (true, true) => HEAD_LIMIT,
                (true, false) => 0,
            };
            if limit > 0 {
                let room = limit.saturating_sub(self.capture.len()).min(take);
                self.capture.extend_from_slice(&data[..room]);
            }
            data = &data[take..];
            current.remaining -= take as u64;
            self.current = Some(current);
            if current.remaining == 0 {
                self.finish(current, &mut on_event);
            }
        }
        Ok(())
    }

    fn finish(&mut self, current: Current, on_event: &mut impl FnMut(Event<'_>)) {
        self.current = None;
        if current.expected {
            on_event(Event::Expected {
                head: &self.capture,
            });
            self.capture.clear();
        } else {
            on_event(Event::Other {
                opcode: current.opcode,
                fin: current.fin,
                len: current.len,
                payload: &self.capture,
            });
            self.capture.clear();
        }
    }

    /// Collects header bytes; sets `current` once the header is complete.
    fn read_head(&mut self, data: &mut &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            self.head[self.head_len] = data[0];
            self.head_len += 1;
            *data = &data[1..];
            let Some(needed) = self.head_needed()? else {
                continue;
            };
            if self.head_len < needed {
                continue;
            }
            let h = &self.head;
            let len = match h[1] & 0x7f {
                126 => u16::from_be_bytes([h[2], h[3]]) as u64,
                127 => u64::from_be_bytes(h[2..10].try_into().expect("8 bytes")),
                len => len as u64,
            };
            let opcode = h[0] & 0x0f;
            let expected = opcode == TEXT
                && h[0] & 0x80 != 0
                && (self.any_text || self.expected.contains(&len));
            self.current = Some(Current {
                opcode,
                fin: h[0] & 0x80 != 0,
                len,
                remaining: len,
                expected,
            });
            self.head_len = 0;
            return Ok(());
        }
        Ok(())
    }

    /// The header's full length once its second byte is known.
    fn head_needed(&self) -> io::Result<Option<usize>> {
        if self.head_len < 2 {
            return Ok(None);
        }
        if self.head[1] & 0x80 != 0 {
            return Err(io::Error::other("the server sent a masked frame"));
        }
        Ok(Some(match self.head[1] & 0x7f {
            126 => 4,
            127 => 10,
            _ => 2,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut frame = masked_frame(opcode, payload);
        // Unmask: clear the mask bit, drop the key, undo the XOR.
        let key_at = frame.len() - payload.len() - 4;
        frame[1] &= 0x7f;
        frame.drain(key_at..key_at + 4);
        frame[key_at..].copy_from_slice(payload);
        frame
    }

    #[test]
    fn counts_expected_frames_split_anywhere_and_captures_others() {
        let long = vec![b'x'; 300];
        let mut stream = server_frame(TEXT, b"hello");
        stream.extend(server_frame(TEXT, &long));
        stream.extend(server_frame(PING, b"p"));
        stream.extend(server_frame(TEXT, b"hello"));
        for split in 1..stream.len() {
            let mut parser = FrameParser::default();
            parser.expect(&[5]);
            let (mut expected, mut others) = (0, Vec::new());
            for chunk in stream.chunks(split) {
                parser
                    .feed(chunk, |event| match event {
                        Event::Expected { head } => {
                            assert!(head.is_empty());
                            expected += 1;
                        }
                        Event::Other {
                            opcode,
                            len,
                            payload,
                            ..
                        } => others.push((opcode, len, payload.len())),
                    })
                    .unwrap();
            }
            assert_eq!(expected, 2, "split {split}");
            assert_eq!(
                others,
                vec![(TEXT, 300, 300), (PING, 1, 1)],
                "split {split}"
            );
        }
    }

    #[test]
    fn any_text_mode_counts_text_frames_with_the_head_of_their_payload() {
        let long = vec![b'y'; 1000];
        let mut stream = server_frame(TEXT, b"#0000000007 hi");
        stream.extend(server_frame(PING, b"p"));
        stream.extend(server_frame(TEXT, &long));
        for split in 1..stream.len() {
            let mut parser = FrameParser::default();
            parser.expect_any_text();
            let (mut heads, mut others) = (Vec::new(), 0);
            for chunk in stream.chunks(split) {
                parser
                    .feed(chunk, |event| match event {
                        Event::Expected { head } => heads.push(head.to_vec()),
                        Event::Other { .. } => others += 1,
                    })
                    .unwrap();
            }
            assert_eq!(
                heads,
                vec![b"#0000000007 hi".to_vec(), vec![b'y'; HEAD_LIMIT]],
                "split {split}"
            );
            assert_eq!(others, 1, "split {split}");
        }
    }

    #[test]
    fn handshake_response_needs_101_and_the_accept_key() {
        let ok =
            format!("HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: {ACCEPT}\r\n\r\n");
        assert!(check_handshake_response(ok.as_bytes()).is_ok());
        assert!(check_handshake_response(b"HTTP/1.1 503 Busy\r\n\r\n").is_err());
        assert!(
            check_handshake_response(b"HTTP/1.1 101 OK\r\nSec-WebSocket-Accept: x\r\n\r\n")
                .is_err()
        );
    }
}
