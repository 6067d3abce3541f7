package standin

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// lineHandler is a slog.Handler that prints Qdrant-like log lines:
//
//	2026-08-04T10:00:00.123456Z  INFO qdrant: Qdrant HTTP listening on 6333
//
// Attributes are appended as key=value. Messages must never contain keys or tokens.
type lineHandler struct {
	mu     *sync.Mutex
	w      io.Writer
	level  slog.Level
	target string
	attrs  []slog.Attr
}

func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(&lineHandler{mu: &sync.Mutex{}, w: w, level: level, target: "qdrant"})
}

func (h *lineHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }

func (h *lineHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	ts := r.Time
	if ts.IsZero() {
		ts = time.Now()
	}
	b.WriteString(ts.UTC().Format("2006-01-02T15:04:05.000000Z"))
	b.WriteString(" ")
	fmt.Fprintf(&b, "%5s", levelName(r.Level))
	b.WriteString(" ")
	target := h.target
	attrs := append([]slog.Attr(nil), h.attrs...)
	r.Attrs(func(a slog.Attr) bool {
		attrs = append(attrs, a)
		return true
	})
	var rest []string
	for _, a := range attrs {
		if a.Key == "target" {
			target = a.Value.String()
			continue
		}
		rest = append(rest, a.Key+"="+a.Value.String())
	}
	b.WriteString(target)
	b.WriteString(": ")
	b.WriteString(r.Message)
	for _, s := range rest {
		b.WriteString(" ")
		b.WriteString(s)
	}
	b.WriteString("\n")
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := io.WriteString(h.w, b.String())
	return err
}

func (h *lineHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), as...)
	return &c
}

func (h *lineHandler) WithGroup(string) slog.Handler { return h }

func levelName(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "ERROR"
	case l >= slog.LevelWarn:
		return "WARN"
	case l >= slog.LevelInfo:
		return "INFO"
	case l >= slog.LevelDebug:
		return "DEBUG"
	}
	return "TRACE"
}

// parseLogLevel reads Qdrant's log_level (a tracing filter such as "INFO" or "info,actix_web=warn"): the first
// directive without a target decides; unknown values fall back to INFO.
func parseLogLevel(s string) slog.Level {
	for _, d := range strings.Split(s, ",") {
		d = strings.TrimSpace(d)
		if d == "" || strings.Contains(d, "=") {
			continue
		}
		switch strings.ToLower(d) {
		case "trace":
			return slog.LevelDebug - 4
		case "debug":
			return slog.LevelDebug
		case "info":
			return slog.LevelInfo
		case "warn", "warning":
			return slog.LevelWarn
		case "error":
			return slog.LevelError
		case "off":
			return slog.LevelError + 100
		}
	}
	return slog.LevelInfo
}
