package main

import (
	_ "filippo.io/age"
	_ "filippo.io/age/agessh"
	_ "github.com/minio/minio-go/v7"
	_ "github.com/robfig/cron/v3"
	_ "github.com/urfave/cli/v2"
	_ "github.com/klauspost/compress/zstd"
	_ "github.com/jackc/pgx/v5"
	_ "github.com/go-sql-driver/mysql"
	_ "modernc.org/sqlite"
	_ "go.yaml.in/yaml/v3"
	_ "github.com/rogpeppe/go-internal/testscript"
	_ "github.com/restic/chunker"
	_ "golang.org/x/sys/unix"
)
func main() {}
