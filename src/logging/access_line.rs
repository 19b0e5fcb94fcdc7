//! The access line's text, written without tracing's generic formatting machinery.
//!
//! The proxy logs one `access` event per request; tracing-subscriber's default text format
//! writes each field through `write!` with ANSI style wrappers (even when colours are off) and
//! formats the date from scratch, ~12,000 instructions per line (measured with callgrind, see
//! BENCHMARKS.md § "Proxy path toward pingora's floor"). [`AccessLine`] writes the same bytes
//! directly: the date part of the timestamp is kept per thread and rewritten once a second, and
//! plain field values are copied rather than formatted. Every other event, and the access event
//! on a colour terminal, inside a span, or with a `message`, goes to the default format.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::registry::LookupSpan;

/// The target of the proxy's per-request line (`proxy::GatewayProxy::logging`).
pub const ACCESS_TARGET: &str = "access";

/// A text event format that writes `access` events itself and hands the rest to `inner`.
pub struct AccessLine<F> {
    inner: F,
}

impl<F> AccessLine<F> {
    pub fn new(inner: F) -> Self {
        AccessLine { inner }
    }
}

impl<S, N, F> FormatEvent<S, N> for AccessLine<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let plain = meta.target() == ACCESS_TARGET
            && !writer.has_ansi_escapes()
            && meta.fields().field("message").is_none()
            && ctx.event_scope().is_none();
        if !plain {
            return self.inner.format_event(ctx, writer, event);
        }
        write_timestamp(&mut writer, SystemTime::now())?;
        writer.write_str(level_text(*meta.level()))?;
        writer.write_str(" ")?;
        writer.write_str(ACCESS_TARGET)?;
        writer.write_str(": ")?;
        let mut fields = Fields {
            writer: &mut writer,
            first: true,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        writer.write_char('\n')
    }
}

/// The level as the default format pads it.
fn level_text(level: Level) -> &'static str {
    match level {
        Level::TRACE => "TRACE",
        Level::DEBUG => "DEBUG",
        Level::INFO => " INFO",
        Level::WARN => " WARN",
        Level::ERROR => "ERROR",
    }
}

/// Writes fields as the default format does: `name=value`, space separated, values in their
/// `Debug` form (a string quoted and escaped).
struct Fields<'w, 'a> {
    writer: &'w mut Writer<'a>,
    first: bool,
    result: fmt::Result,
}

impl Fields<'_, '_> {
    fn name(&mut self, field: &Field) -> fmt::Result {
        if !std::mem::take(&mut self.first) {
            self.writer.write_char(' ')?;
        }
        let name = field.name();
        self.writer
            .write_str(name.strip_prefix("r#").unwrap_or(name))?;
        self.writer.write_char('=')
    }

    fn write(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_ok() {
            self.result = self.name(field).and_then(|()| value(self.writer));
        }
    }
}

impl Visit for Fields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.write(field, |w| {
            // `Debug` for a string only escapes `"`, `\` and what is not printable ASCII.
            if value
                .bytes()
                .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\')
            {
                w.write_char('"')?;
                w.write_str(value)?;
                w.write_char('"')
            } else {
                write!(w, "{value:?}")
            }
        });
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.write(field, |w| write_u64(w, value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.write(field, |w| w.write_str(if value { "true" } else { "false" }));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.write(field, |w| write!(w, "{value:?}"));
    }
}

fn write_u64(w: &mut Writer<'_>, mut value: u64) -> fmt::Result {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    w.write_str(std::str::from_utf8(&digits[at..]).map_err(|_| fmt::Error)?)
}

thread_local! {
    /// The second last formatted on this thread and its `YYYY-MM-DDTHH:MM:SS` text.
    static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// `2026-12-07T03:50:12.123456Z ` (UTC, microseconds), as tracing-subscriber's default timer
/// writes it; the date and time of day are formatted once per second per thread.
fn write_timestamp(w: &mut Writer<'_>, now: SystemTime) -> fmt::Result {
    let Ok(since) = now.duration_since(UNIX_EPOCH) else {
        return w.write_str("<unknown time> ");
    };
    let secs = since.as_secs();
    SECOND.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != secs {
            cached.1.clear();
            write_second(&mut cached.1, secs)?;
            cached.0 = secs;
        }
        w.write_str(&cached.1)
    })?;
    let micros = since.subsec_micros();
    let mut text = *b".000000Z ";
    let mut rest = micros;
    for at in (1..=6).rev() {
        text[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    w.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
}

/// `YYYY-MM-DDTHH:MM:SS` for `secs` after the Unix epoch (UTC).
fn write_second(out: &mut String, secs: u64) -> fmt::Result {
    let days = i64::try_from(secs / 86_400).map_err(|_| fmt::Error)?;
    let of_day = secs % 86_400;
    let (year, month, day) = civil_date(days);
    if year > 9999 {
        write!(out, "+{year}")?;
    } else {
        write!(out, "{year:04}")?;
    }
    write!(
        out,
        "-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_date(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    // Both are in range by construction (1..=12, 1..=31).
    (year, month as u32, day as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().expect("buffer").extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Buffer {
        fn take(&self) -> String {
            String::from_utf8(std::mem::take(&mut *self.0.lock().expect("buffer"))).expect("utf8")
        }
    }

    /// One access event with awkward values: a quote and non-ASCII in a string, a float.
    fn emit(path: &str) {
        let client: Option<std::net::IpAddr> = Some([192, 0, 2, 7].into());
        tracing::info!(
            target: "access",
            method = %http::Method::GET,
            client = %client.map_or_else(|| "-".to_string(), |ip| ip.to_string()),
            host = "app.example:8443",
            path,
            status = 200u16,
            upstream = "app",
            duration_ms = 0.125_f64,
            r#type = true,
        );
    }

    fn line(fast: bool, path: &str) -> String {
        SECOND.with(|cell| cell.borrow_mut().0 = u64::MAX);
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let builder = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone());
        if fast {
            let subscriber = builder
                .event_format(AccessLine::new(tracing_subscriber::fmt::format()))
                .finish();
            tracing::subscriber::with_default(subscriber, || emit(path));
        } else {
            let subscriber = builder.finish();
            tracing::subscriber::with_default(subscriber, || emit(path));
        }
        // The fast path ran (it keeps the second it formatted), not the default format.
        let used = SECOND.with(|cell| cell.borrow().0 != u64::MAX);
        assert_eq!(used, fast, "fast path used");
        buffer.take()
    }

    /// The line is byte for byte the default format's after the timestamp, and the timestamp
    /// has its shape.
    #[test]
    fn same_line_as_the_default_format() {
        for path in ["/app/x", "/a\"b\\c", "/caf\u{e9}", "/tab\there"] {
            let (fast, default) = (line(true, path), line(false, path));
            let (stamp, rest) = fast.split_at(28);
            let default_rest = &default[28..];
            assert_eq!(rest, default_rest, "{path}");
            assert!(rest.contains("client=192.0.2.7 "), "{rest}");
            let bytes = stamp.as_bytes();
            assert_eq!(
                (bytes[4], bytes[10], bytes[19], bytes[26]),
                (b'-', b'T', b'.', b'Z')
            );
        }
    }

    #[test]
    fn dates_of_known_seconds() {
        let cases = [
            (0, "1970-01-01T00:00:00"),
            (951_782_400, "2000-02-29T00:00:00"),
            (951_868_799, "2000-02-29T23:59:59"),
            (1_798_761_599, "2026-12-31T23:59:59"),
            (4_107_542_400, "2100-03-01T00:00:00"),
            (253_402_300_799, "9999-12-31T23:59:59"),
            (253_402_300_800, "+10000-01-01T00:00:00"),
        ];
        for (secs, want) in cases {
            let mut text = String::new();
            write_second(&mut text, secs).expect("formats");
            assert_eq!(text, want, "{secs}");
        }
    }

    #[test]
    fn timestamps_match_the_default_timer() {
        use tracing_subscriber::fmt::time::FormatTime;
        let at = UNIX_EPOCH + Duration::new(1_796_615_412, 4_560_789);
        let mut ours = String::new();
        write_timestamp(&mut Writer::new(&mut ours), at).expect("formats");
        assert_eq!(ours, "2026-12-07T03:50:12.004560Z ");
        // The default timer only formats now: compare the two around the same second.
        for _ in 0..3 {
            let mut theirs = String::new();
            tracing_subscriber::fmt::time::SystemTime
                .format_time(&mut Writer::new(&mut theirs))
                .expect("formats");
            let mut ours = String::new();
            write_timestamp(&mut Writer::new(&mut ours), SystemTime::now()).expect("formats");
            if ours[..19] == theirs[..19] {
                assert_eq!(ours.len(), theirs.len() + 1, "{ours} {theirs}");
                return;
            }
        }
        panic!("the second never matched");
    }
}
