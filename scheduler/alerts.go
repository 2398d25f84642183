package scheduler

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/cofferhq/coffer/internal/config"
)

// Alert events.
const (
	EventFailure      = "failure"       // a run failed
	EventRecovery     = "recovery"      // a job succeeded after a failure or a missed schedule
	EventMissed       = "missed"        // no success within twice the interval
	EventDrillFailure = "drill_failure" // a drill failed or could not run
	EventUnrestorable = "unrestorable"  // a Fernet or key problem: the snapshot cannot be restored as is (exit 5)
	EventIncomplete   = "incomplete"    // a snapshot saved without what could not be read (exit 4)
)

// Alert is what a webhook receives (the generic JSON body).
type Alert struct {
	Event   string    `json:"event"`
	Job     string    `json:"job"`
	Run     string    `json:"run,omitempty"`
	Message string    `json:"message"`
	Host    string    `json:"host"`
	Time    time.Time `json:"time"`
}

// alerter posts alerts to the configured webhooks in the background,
// retried with backoff, each webhook's in the order they happened.
type alerter struct {
	log   *slog.Logger
	owner string
	// Attempts and Delay tune the retries (defaults 4 and 1s).
	attempts int
	delay    time.Duration

	mu     sync.Mutex
	hooks  []config.Alert
	queues map[config.Alert]chan Alert
	// pending counts the alerts queued and not yet delivered or given up.
	pending sync.WaitGroup
}

// flush waits until the queued alerts are delivered or given up, at most
// for timeout.
func (a *alerter) flush(timeout time.Duration) {
	done := make(chan struct{})
	go func() { a.pending.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
		a.log.Warn("stopping with alerts not yet delivered")
	}
}

func (a *alerter) set(h []config.Alert) {
	a.mu.Lock()
	a.hooks = h
	a.mu.Unlock()
}

// send queues al for every webhook without waiting.
func (a *alerter) send(al Alert) {
	al.Host, al.Time = a.owner, time.Now().UTC()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.queues == nil {
		a.queues = map[config.Alert]chan Alert{}
	}
	for _, h := range a.hooks {
		q := a.queues[h]
		if q == nil {
			q = make(chan Alert, 256)
			a.queues[h] = q
			go a.deliver(h, q)
		}
		a.pending.Add(1)
		select {
		case q <- al:
		default:
			a.pending.Done()
			a.log.Error("alert dropped: the webhook's queue is full", "webhook", config.RedactURL(h.URL), "event", al.Event, "job", al.Job)
		}
	}
}

// deliver posts a webhook's alerts one after the other.
func (a *alerter) deliver(h config.Alert, q <-chan Alert) {
	for al := range q {
		if err := a.post(context.Background(), h, al); err != nil {
			a.log.Error("alert not delivered", "webhook", config.RedactURL(h.URL), "event", al.Event, "job", al.Job, "error", err.Error())
		} else {
			a.log.Info("alert delivered", "webhook", config.RedactURL(h.URL), "event", al.Event, "job", al.Job)
		}
		a.pending.Done()
	}
}

// body is the request body of an alert in a webhook's format.
func body(format string, al Alert) ([]byte, error) {
	if format == "slack" {
		text := fmt.Sprintf("coffer %s: job %s on %s: %s", al.Event, al.Job, al.Host, al.Message)
		if al.Run != "" {
			text += " (run " + al.Run + ")"
		}
		return json.Marshal(map[string]string{"text": text})
	}
	return json.Marshal(al)
}

// post delivers one alert, retried with backoff and jitter. Its errors
// never hold the URL: a webhook's URL is often its secret.
func (a *alerter) post(ctx context.Context, h config.Alert, al Alert) error {
	b, err := body(h.Format, al)
	if err != nil {
		return err
	}
	attempts, delay := a.attempts, a.delay
	if attempts == 0 {
		attempts = 4
	}
	if delay == 0 {
		delay = time.Second
	}
	client := &http.Client{Timeout: 15 * time.Second}
	var last error
	for i := 0; i < attempts; i++ {
		if i > 0 {
			time.Sleep(delay/2 + rand.N(delay/2+1))
			delay *= 2
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.URL, bytes.NewReader(b))
		if err != nil {
			return errors.New("invalid webhook URL")
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err // without the URL
			}
			last = err
			continue
		}
		resp.Body.Close()
		if resp.StatusCode/100 == 2 {
			return nil
		}
		last = fmt.Errorf("webhook answered %s", resp.Status)
		if resp.StatusCode/100 == 4 && resp.StatusCode != http.StatusTooManyRequests {
			return last
		}
	}
	return fmt.Errorf("%w (after %d attempts)", last, attempts)
}
