package scheduler

import (
	"io"
	"log/slog"
	"os"

	"github.com/cofferhq/coffer/internal/config"
)

// newLogger logs to w (default stderr) in the configuration's format.
func newLogger(w io.Writer, cfg *config.Config) *slog.Logger {
	if w == nil {
		w = os.Stderr
	}
	if cfg.DaemonSettings().LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, nil))
	}
	return slog.New(slog.NewTextHandler(w, nil))
}
