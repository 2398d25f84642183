// Package config is coffer's one configuration layer: the CLI and the
// daemon both call Load and get the same merged, validated settings.
//
// # Precedence
//
// Load merges four layers, each winning over the ones after it:
//
//	flag > environment > file > default
//
// A flag is a value the caller saw on its command line (Overrides; an
// empty value means not given), the environment is read through the
// function the caller passes (os.Getenv in production; an empty variable
// counts as unset), the file is the YAML configuration, and the defaults
// are DefaultUploads and DefaultRegion.
//
// One exception keeps the behaviour coffer always had: the file's s3:
// section wins over COFFER_S3_ENDPOINT and the AWS_* variables, which are
// often set for other tools. Its endpoint, scheme included, replaces the
// environment's; its credentials (when access_key_id is set) replace both
// AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; its region wins over
// AWS_REGION.
//
// Without access keys, S3 credentials come from a chain: the profile of
// the shared credentials file, then the instance metadata service (EC2,
// ECS, EKS; s3.iam: false turns it off), then none (anonymous requests).
//
// # Environment
//
//	COFFER_CONFIG          the configuration file, when LoadOptions.File is empty
//	COFFER_REPO            repository
//	COFFER_IDENTITY        identity
//	COFFER_SIGNING_KEY     signing_key
//	COFFER_S3_ENDPOINT     s3.endpoint: "host[:port]", "https://..." or "http://..." (plain http)
//	AWS_ACCESS_KEY_ID      s3.access_key_id
//	AWS_SECRET_ACCESS_KEY  s3.secret_access_key
//	AWS_SESSION_TOKEN      the session token of temporary credentials
//	AWS_SHARED_CREDENTIALS_FILE  s3.credentials_file (default ~/.aws/credentials)
//	AWS_PROFILE            s3.profile (default "default")
//	AWS_REGION             s3.region (default us-east-1)
//
// # Paths
//
// Relative paths in the file (repository, identity, signing_key, cache_dir
// and the locations of dir and sqlite sources) are relative to the file's
// folder; DSNs and URLs are left alone. Paths from the environment or flags
// are used as given, relative to the working directory.
//
// # Validation
//
// Validate returns every problem of a file at once, one per line, each
// naming the key and its line. The S3 settings are checked when they are
// used (Config.S3Config), so that a command that opens no store is not
// refused for them.
package config
