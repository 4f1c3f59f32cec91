//! Close codes: the ones the framework sends (PROTOCOL.md section 7), and the application's.

use crate::errors::CloseError;

/// A close code a server may send.
///
/// It can only hold a code that is valid on the wire: the constants below, an application
/// code checked at compile time ([`CloseCode::app`]), or a number checked at run time
/// (`CloseCode::try_from(4001)`). Codes that mean "no close frame was seen" (1005, 1006, 1015)
/// or that only a client sends (1010) cannot be built, so they never reach a client.
///
/// ```
/// use vania_ws_core::CloseCode;
///
/// assert_eq!(CloseCode::app::<4001>().get(), 4001);
/// assert_eq!(CloseCode::try_from(1008), Ok(CloseCode::POLICY));
/// assert!(CloseCode::try_from(1006).is_err());
/// ```
///
/// An application code outside 3000–4999 is a compile error:
///
/// ```compile_fail
/// let code = vania_ws_core::CloseCode::app::<1006>();
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CloseCode(u16);

impl CloseCode {
    /// 1000: normal close.
    pub const NORMAL: Self = Self(1000);
    /// 1001: the server is shutting down.
    pub const GOING_AWAY: Self = Self(1001);
    /// 1002: a WebSocket protocol violation.
    pub const PROTOCOL: Self = Self(1002);
    /// 1003: a kind of data the endpoint cannot accept.
    pub const UNSUPPORTED_DATA: Self = Self(1003);
    /// 1007: a text frame with invalid UTF-8.
    pub const INVALID_PAYLOAD: Self = Self(1007);
    /// 1008: policy violation, such as abuse or a slow consumer.
    pub const POLICY: Self = Self(1008);
    /// 1009: a message over the size limit.
    pub const TOO_BIG: Self = Self(1009);
    /// 1011: an internal server error.
    pub const INTERNAL: Self = Self(1011);
    /// 1012: the service is restarting.
    pub const RESTART: Self = Self(1012);
    /// 1013: try again later.
    pub const TRY_AGAIN_LATER: Self = Self(1013);

    /// An application's own code, `N` in 3000–4999 (3000–3999 registered with IANA, 4000–4999
    /// private); any other `N` fails to compile.
    pub const fn app<const N: u16>() -> Self {
        const {
            assert!(
                3000 <= N && N <= 4999,
                "an application close code must be in 3000-4999; for the protocol's own codes use the constants (CloseCode::NORMAL, …)"
            );
        }
        Self(N)
    }

    /// The code's number.
    pub const fn get(self) -> u16 {
        self.0
    }
}

impl TryFrom<u16> for CloseCode {
    type Error = CloseError;

    fn try_from(code: u16) -> Result<Self, CloseError> {
        match code {
            1000..=1003 | 1007..=1009 | 1011..=1014 | 3000..=4999 => Ok(Self(code)),
            _ => Err(CloseError::InvalidCode(code)),
        }
    }
}

impl From<CloseCode> for u16 {
    fn from(code: CloseCode) -> u16 {
        code.0
    }
}

/// Why a client's connection ended, as its `disconnect` handler reads it with
/// [`Client::disconnect_reason`](crate::Client::disconnect_reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// The client sent a close frame, with this code (`None` for a close frame without one).
    ClientClosed {
        /// The client's close code.
        code: Option<u16>,
    },
    /// The connection ended without a close frame: the peer vanished, or the transport failed.
    TransportClosed,
    /// The client did not answer the server's ping in time.
    PingTimeout,
    /// The client did not read fast enough: its send queue overflowed (closed with 1008).
    SlowConsumer,
    /// The server is shutting down (closed with 1001). A handler's close with 1001 is a
    /// [`ServerClosed`](Self::ServerClosed).
    ServerShutdown,
    /// The server closed the connection with this code: a handler's
    /// [`Client::close`](crate::Client::close), a protocol violation (1002, 1007, 1009), a
    /// flood (1008), or an internal error (1011).
    ServerClosed {
        /// The close code sent.
        code: CloseCode,
    },
}

/// The longest close reason: a close frame's payload is at most 125 bytes, two of them the
/// code.
pub(crate) const MAX_REASON_BYTES: usize = 123;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_codes_a_server_may_send_convert() {
        for code in [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1011, 1012, 1013, 1014, 3000, 4999,
        ] {
            assert_eq!(CloseCode::try_from(code).map(CloseCode::get), Ok(code));
        }
        for code in [
            0,
            999,
            1004,
            1005,
            1006,
            1010,
            1015,
            1016,
            2999,
            5000,
            u16::MAX,
        ] {
            assert_eq!(
                CloseCode::try_from(code),
                Err(CloseError::InvalidCode(code))
            );
        }
    }
}
