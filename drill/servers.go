package drill

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/cofferhq/coffer/internal/pgcluster"
	"github.com/cofferhq/coffer/source/mysql"
	"github.com/cofferhq/coffer/source/postgres"
)

// Server is a database server a drill restores into: an ephemeral
// PostgreSQL cluster that the drill starts, or a configured drill server
// on which it creates databases named DatabasePrefix+<drill id>_<n>.
type Server interface {
	// Kind is the source kind it serves ("postgres", "mysql").
	Kind() string
	// Key names the server without credentials ("postgres 127.0.0.1:5432");
	// "" for an ephemeral cluster, which lives in the scratch folder.
	Key() string
	// Where describes it for the report, without credentials.
	Where() string
	// NewDatabase returns the DSN of a database that does not exist yet,
	// for a restore to create, named for the drill (its ScratchID) and n.
	NewDatabase(ctx context.Context, drill string, n int) (dsn, name string, err error)
	// EnsureRoles creates the roles a restore gives objects to, where the
	// drill owns the server (an ephemeral cluster); a drill server is left
	// as it is.
	EnsureRoles(ctx context.Context, roles []string) error
	// DropDrill drops every database of the drill with this scratch id.
	DropDrill(ctx context.Context, drill string) ([]string, error)
	// Close stops what the drill started (an ephemeral cluster).
	Close(ctx context.Context) error
}

// dbName is a drill's n-th scratch database name.
func dbName(drill string, n int) string {
	return DatabasePrefix + drill + "_" + strconv.Itoa(n)
}

// pgServer is a configured PostgreSQL drill server.
type pgServer struct {
	dsn  string
	addr string
}

// NewPostgresServer returns the drill server dsn names (a superuser, or a
// role that may create databases).
func NewPostgresServer(dsn string) (Server, error) {
	dsn, err := postgres.DSN(dsn)
	if err != nil {
		return nil, err
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, errors.New("postgres drill server: invalid DSN")
	}
	return &pgServer{dsn: dsn, addr: net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))}, nil
}

func (s *pgServer) Kind() string  { return "postgres" }
func (s *pgServer) Key() string   { return "postgres " + s.addr }
func (s *pgServer) Where() string { return "drill server " + s.addr }

func (s *pgServer) NewDatabase(ctx context.Context, drill string, n int) (string, string, error) {
	name := dbName(drill, n)
	return withDatabase(s.dsn, name), name, nil
}

func (s *pgServer) EnsureRoles(context.Context, []string) error { return nil }

func (s *pgServer) DropDrill(ctx context.Context, drill string) ([]string, error) {
	return postgres.DropScratch(ctx, s.dsn, DatabasePrefix+drill+"_", nil)
}

func (s *pgServer) Close(context.Context) error { return nil }

// withDatabase returns dsn (a URL or a keyword/value DSN) naming database
// db instead.
func withDatabase(dsn, db string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		if u, err := url.Parse(dsn); err == nil {
			u.Path = "/" + db
			q := u.Query()
			if q.Has("dbname") {
				q.Del("dbname")
				u.RawQuery = q.Encode()
			}
			return u.String()
		}
	}
	// In a keyword/value DSN the last occurrence of a keyword wins.
	return strings.TrimSpace(dsn + " dbname='" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(db) + "'")
}

// pgEphemeral is a private PostgreSQL cluster in the drill's scratch
// folder, started on first use.
type pgEphemeral struct {
	dir     string // where the cluster's folder is created
	cluster *pgcluster.Cluster
	roles   map[string]bool
}

func (s *pgEphemeral) Kind() string { return "postgres" }
func (s *pgEphemeral) Key() string  { return "" }
func (s *pgEphemeral) Where() string {
	if s.cluster == nil {
		return "ephemeral cluster"
	}
	return fmt.Sprintf("ephemeral cluster (PostgreSQL %s, 127.0.0.1:%d)", s.cluster.Version, s.cluster.Port)
}

func (s *pgEphemeral) start(ctx context.Context) error {
	if s.cluster != nil {
		return nil
	}
	if os.Geteuid() == 0 {
		// The server runs as an unprivileged user, which must reach its
		// own folder inside the scratch folder (not list it).
		if err := os.Chmod(s.dir, 0o711); err != nil {
			return err
		}
	}
	c, err := pgcluster.Start(ctx, pgcluster.Options{Fast: true, TempDir: s.dir})
	if err != nil {
		return fmt.Errorf("start the ephemeral PostgreSQL cluster: %w", err)
	}
	s.cluster = c
	return nil
}

func (s *pgEphemeral) NewDatabase(ctx context.Context, drill string, n int) (string, string, error) {
	if err := s.start(ctx); err != nil {
		return "", "", err
	}
	name := dbName(drill, n)
	return s.cluster.DSN(name), name, nil
}

func (s *pgEphemeral) EnsureRoles(ctx context.Context, roles []string) error {
	if err := s.start(ctx); err != nil {
		return err
	}
	if s.roles == nil {
		s.roles = map[string]bool{}
	}
	var todo []string
	for _, r := range roles {
		if !s.roles[r] {
			todo = append(todo, r)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	conn, err := postgres.Connect(ctx, s.cluster.DSN("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for _, r := range todo {
		var exists bool
		if err := conn.QueryRow(ctx, "select exists (select 1 from pg_roles where rolname = $1)", r).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			if _, err := conn.Exec(ctx, "create role "+pgx.Identifier{r}.Sanitize()+" nologin"); err != nil {
				return fmt.Errorf("create role %s on the ephemeral cluster: %w", r, err)
			}
		}
		s.roles[r] = true
	}
	return nil
}

func (s *pgEphemeral) DropDrill(context.Context, string) ([]string, error) { return nil, nil }

func (s *pgEphemeral) Close(ctx context.Context) error {
	if s.cluster == nil {
		return nil
	}
	return s.cluster.Stop(ctx)
}

// mysqlServer is a configured MySQL/MariaDB drill server.
type mysqlServer struct {
	dsn  string
	addr string
}

// NewMySQLServer returns the drill server dsn names (an account that may
// create and drop databases).
func NewMySQLServer(dsn string) (Server, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, err
	}
	return &mysqlServer{dsn: dsn, addr: cfg.Addr}, nil
}

func (s *mysqlServer) Kind() string  { return "mysql" }
func (s *mysqlServer) Key() string   { return "mysql " + s.addr }
func (s *mysqlServer) Where() string { return "drill server " + s.addr }

func (s *mysqlServer) NewDatabase(ctx context.Context, drill string, n int) (string, string, error) {
	cfg, err := mysql.ParseDSN(s.dsn)
	if err != nil {
		return "", "", err
	}
	name := dbName(drill, n)
	cfg.DBName = name
	return cfg.FormatDSN(), name, nil
}

func (s *mysqlServer) EnsureRoles(context.Context, []string) error { return nil }

func (s *mysqlServer) DropDrill(ctx context.Context, drill string) ([]string, error) {
	return mysql.DropScratch(ctx, s.dsn, DatabasePrefix+drill+"_", nil)
}

func (s *mysqlServer) Close(context.Context) error { return nil }
