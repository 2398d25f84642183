package repo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"filippo.io/age"

	"github.com/cofferhq/coffer/internal/keys"
	"github.com/cofferhq/coffer/storage"
)

// This file is the repository config: init, opening with a pinned owner
// key, the host checks, and the owner's changes (seq+1).

// maxConfigDoc caps a config document.
const maxConfigDoc = 1 << 20

// ErrConfigChanged is returned when another change of the config landed
// between reading the newest config and writing the next one.
var ErrConfigChanged = errors.New("the repository config changed meanwhile (another key change landed first); run the command again")

// ErrNeedRecipientIdentity is returned by UpdateConfig when the
// recipients change but the repository was not opened with the identity
// of a current recipient: the data keys are handed on through it.
var ErrNeedRecipientIdentity = errors.New("changing the recipients needs the identity of a current recipient, which hands the data keys on to the new set")

// ErrChunkerChange is returned by UpdateConfig when the edit changes the
// chunker: every backup of a repository chunks alike, or new backups
// would deduplicate nothing against older ones.
var ErrChunkerChange = errors.New("the chunker of a repository cannot change")

// ErrNoHosts is returned by Init without a host key.
var ErrNoHosts = errors.New("no host key: a repository needs at least one backup host key")

// UnpinnedError is returned by Open without an owner key to check the
// config against. Claimed is the owner key the newest config names
// (unverified), for a person to compare with the real one.
type UnpinnedError struct {
	Location string
	Claimed  keys.OwnerPublic // nil if the config names none that parses
}

func (e *UnpinnedError) Error() string {
	if e.Claimed == nil {
		return fmt.Sprintf("the repository at %s is not pinned to an owner key", e.Location)
	}
	return fmt.Sprintf("the repository at %s is not pinned to an owner key; its config claims owner %s", e.Location, e.Claimed.Fingerprint())
}

// OwnerMismatchError is returned when no config is signed by the pinned
// owner key and the configs name another owner: a forged or foreign
// repository, or the wrong pin.
type OwnerMismatchError struct {
	Location string
	Claimed  keys.OwnerPublic
	Pinned   keys.OwnerPublic
}

func (e *OwnerMismatchError) Error() string {
	return fmt.Sprintf("the repository at %s is owned by %s, not by the pinned owner key %s (a forged or another repository?)",
		e.Location, e.Claimed.Fingerprint(), e.Pinned.Fingerprint())
}

// RollbackError says that the newest config is older than one seen before.
type RollbackError struct {
	Newest, Seen int64
}

func (e *RollbackError) Error() string {
	return fmt.Sprintf("rollback: the newest config is %d, but config %d was seen before (a newer config was removed)", e.Newest, e.Seen)
}

// HostError says that a host key may not publish snapshots: the config
// does not list it, or has revoked it.
type HostError struct {
	Key     string
	Revoked *Revocation
}

func (e *HostError) Error() string {
	fp := keyFingerprint(e.Key)
	if e.Revoked != nil {
		return fmt.Sprintf("host key %s was revoked on %s: it may not back up into this repository", fp, e.Revoked.Time.Format(time.RFC3339))
	}
	return fmt.Sprintf("host key %s is not authorised by the repository config", fp)
}

func keyFingerprint(text string) string {
	if k, err := keys.ParsePublicKey(text); err == nil {
		return k.Fingerprint()
	}
	return "(malformed key)"
}

// InitOptions are a new repository's keys.
type InitOptions struct {
	Owner      *keys.OwnerKey
	Recipients []keys.Recipient
	Hosts      []keys.HostPublic
}

// Init writes a new repository's secrets object and its first config,
// signed by the owner key. It refuses a store that already holds a config.
func Init(ctx context.Context, st storage.Store, o InitOptions, opts ...InitOption) (*Config, error) {
	if len(o.Recipients) == 0 {
		return nil, ErrNoRecipients
	}
	if len(o.Hosts) == 0 {
		return nil, ErrNoHosts
	}
	if o.Owner == nil {
		return nil, errors.New("no owner key")
	}
	seqs, err := listConfigs(ctx, st)
	if err != nil {
		return nil, err
	}
	if len(seqs) > 0 {
		return nil, fmt.Errorf("%s already holds a coffer repository", st.Location())
	}
	if err := noConfig(ctx, st); !errors.Is(err, ErrNotInitialized) {
		if errors.Is(err, ErrNotCoffer) {
			return nil, err
		}
		return nil, fmt.Errorf("%s already holds a coffer repository", st.Location())
	}
	now := time.Now().UTC().Truncate(time.Second)
	cfg := Config{
		Version: Version,
		ID:      NewID(),
		Seq:     1,
		Created: now,
		Owner:   o.Owner.Public().String(),
		Revoked: []Revocation{},
		ChunkID: "hmac-sha256",
		Chunker: ChunkerParams{Algorithm: ChunkerGear, MinSize: DefaultChunkMin,
			MaxSize: DefaultChunkMax, AverageBits: DefaultChunkAvgBits},
		Packs: PackParams{TargetSize: DefaultPackSize, Compression: "zstd"},
	}
	for _, opt := range opts {
		opt(&cfg)
	}
	if err := cfg.Chunker.check(); err != nil {
		return nil, err
	}
	if cfg.ObjectLock != nil {
		if err := CheckObjectLock(ctx, st, cfg.ObjectLock); err != nil {
			return nil, err
		}
	}
	st = locked(st, &cfg)
	for _, r := range o.Recipients {
		if !contains(cfg.Recipients, r.Text) {
			cfg.Recipients = append(cfg.Recipients, r.Text)
		}
	}
	for _, h := range o.Hosts {
		if cfg.HostEntry(h.Key.String()) == nil {
			cfg.Hosts = append(cfg.Hosts, Host{Key: h.Key.String(), Box: h.Box.String(), Added: now})
		}
	}
	secrets, err := keys.NewDerived()
	if err != nil {
		return nil, err
	}
	if cfg.Secrets, err = putSecrets(ctx, st, &cfg, o.Owner, secrets); err != nil {
		return nil, err
	}
	data, err := age.GenerateX25519Identity()
	if err != nil {
		return nil, err
	}
	cfg.DataRecipient = data.Recipient().String()
	if cfg.DataKeys, err = putDataKeys(ctx, st, &cfg, []*age.X25519Identity{data}); err != nil {
		return nil, err
	}
	if _, err := putConfig(ctx, st, &cfg, o.Owner); err != nil {
		if errors.Is(err, ErrConfigChanged) {
			return nil, fmt.Errorf("%s already holds a coffer repository", st.Location())
		}
		return nil, err
	}
	return &cfg, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// putSecrets encrypts the secrets to cfg's recipients, the owner's box and
// every authorised host's box, and stores them.
func putSecrets(ctx context.Context, st storage.Store, cfg *Config, owner *keys.OwnerKey, d *keys.Derived) (ObjectRef, error) {
	var rs []age.Recipient
	for _, s := range cfg.Recipients {
		r, err := keys.ParseRecipient(s)
		if err != nil {
			return ObjectRef{}, fmt.Errorf("recipient: %w", err)
		}
		rs = append(rs, r.Recipient)
	}
	rs = append(rs, owner.BoxIdentity().Recipient())
	for _, h := range cfg.Hosts {
		box, err := keys.ParseHostBox(h.Box)
		if err != nil {
			return ObjectRef{}, err
		}
		rs = append(rs, box)
	}
	plain, err := d.MarshalBinary()
	if err != nil {
		return ObjectRef{}, err
	}
	ct, err := Encrypt(plain, rs...)
	if err != nil {
		return ObjectRef{}, err
	}
	return putContent(ctx, st, KeysPrefix, ct)
}

// putDataKeys stores the data identities, oldest first, as an age
// identity file encrypted to cfg's recipients only.
func putDataKeys(ctx context.Context, st storage.Store, cfg *Config, ids []*age.X25519Identity) (ObjectRef, error) {
	var rs []age.Recipient
	for _, s := range cfg.Recipients {
		r, err := keys.ParseRecipient(s)
		if err != nil {
			return ObjectRef{}, fmt.Errorf("recipient: %w", err)
		}
		rs = append(rs, r.Recipient)
	}
	var b bytes.Buffer
	b.WriteString("# coffer data keys, oldest first: packs, catalog roots and indexes are encrypted to one of them\n")
	for _, id := range ids {
		b.WriteString(id.String() + "\n")
	}
	ct, err := Encrypt(b.Bytes(), rs...)
	if err != nil {
		return ObjectRef{}, err
	}
	return putContent(ctx, st, KeysPrefix, ct)
}

// loadDataKeys decrypts the data keys object with the identities the
// repository was opened with.
func (r *Repository) loadDataKeys(ctx context.Context) ([]*age.X25519Identity, error) {
	ct, err := r.ReadObject(ctx, r.Config.DataKeys)
	if err != nil {
		return nil, err
	}
	plain, err := Decrypt(ct, r.identities...)
	if err != nil {
		return nil, decryptError(r.Config.DataKeys.Name, err)
	}
	ids, err := age.ParseIdentities(bytes.NewReader(plain))
	if err != nil {
		return nil, integrity(r.Config.DataKeys.Name, "malformed data keys")
	}
	var out []*age.X25519Identity
	for _, id := range ids {
		x, ok := id.(*age.X25519Identity)
		if !ok {
			return nil, integrity(r.Config.DataKeys.Name, "malformed data keys")
		}
		out = append(out, x)
	}
	if len(out) == 0 || out[len(out)-1].Recipient().String() != r.Config.DataRecipient {
		return nil, integrity(r.Config.DataKeys.Name, "the newest data key is not the config's data recipient")
	}
	return out, nil
}

// putConfig signs cfg with the owner key and writes it as config/<seq>,
// create-if-absent: a config of that seq already there gives
// ErrConfigChanged. It returns the document.
func putConfig(ctx context.Context, st storage.Store, cfg *Config, owner *keys.OwnerKey) ([]byte, error) {
	doc, err := Sign(KindConfig, cfg, owner)
	if err != nil {
		return nil, err
	}
	if cfg.Seq < 1 || cfg.Seq > MaxConfigSeq {
		return nil, fmt.Errorf("config number %d does not fit in a config name", cfg.Seq)
	}
	// PutObject counts our own retried write as success.
	name := ConfigName(cfg.Seq)
	if err := PutObject(ctx, st, name, doc); err != nil {
		if errors.Is(err, storage.ErrExists) {
			return nil, fmt.Errorf("write %s: %w", name, ErrConfigChanged)
		}
		return nil, err
	}
	return doc, nil
}

// listConfigs returns the seqs of the config objects, ascending.
func listConfigs(ctx context.Context, st storage.Store) ([]int64, error) {
	var seqs []int64
	err := st.List(ctx, ConfigPrefix, func(oi storage.ObjectInfo) error {
		if n, ok := parseConfigName(oi.Name); ok {
			seqs = append(seqs, n)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list configs: %w", err)
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	return seqs, nil
}

func hasLegacyConfig(ctx context.Context, st storage.Store) bool {
	_, err := st.Stat(ctx, legacyConfigName)
	return err == nil
}

// noConfig is the error for a store without a config object: not
// initialised, a repository of format version 1 (one "config" object), or
// another tool's repository (restic keeps a "config" too).
func noConfig(ctx context.Context, st storage.Store) error {
	if hasLegacyConfig(ctx, st) {
		doc, err := readAll(ctx, st, legacyConfigName, maxConfigDoc)
		if err != nil {
			return fmt.Errorf("read config: %w", err)
		}
		if !IsSignedDocument(doc) {
			// Not damage: something else lives here.
			return fmt.Errorf("%s is %w: its config object is not a coffer config", st.Location(), ErrNotCoffer)
		}
		return fmt.Errorf("repository format version 1 is not supported by this coffer (version %d)", Version)
	}
	return fmt.Errorf("%w at %s", ErrNotInitialized, st.Location())
}

// ParseConfig decodes a config document without checking its signature,
// to learn what it claims.
func ParseConfig(doc []byte, cfg *Config) error {
	return openSigned(KindConfig, doc, nil, cfg)
}

// PeekConfig returns what the newest config object that parses claims,
// unverified: enough to learn the repository id and the owner it names,
// to look up a pin. Never trust anything else in it. Config objects above
// it that do not parse (junk, truncated, vanished) are passed over, as
// Open passes them over; if none parses, it returns an IntegrityError
// naming the newest.
func PeekConfig(ctx context.Context, st storage.Store) (*Config, error) {
	seqs, err := listConfigs(ctx, st)
	if err != nil {
		return nil, err
	}
	if len(seqs) == 0 {
		return nil, noConfig(ctx, st)
	}
	var first error
	for i := len(seqs) - 1; i >= 0; i-- {
		name := ConfigName(seqs[i])
		doc, err := readAll(ctx, st, name, maxConfigDoc)
		if errors.Is(err, storage.ErrNotExist) {
			if first == nil {
				first = integrity(name, "vanished while read")
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		var cfg Config
		if err := ParseConfig(doc, &cfg); err != nil {
			if first == nil {
				first = integrity(name, "%w", err)
			}
			continue
		}
		return &cfg, nil
	}
	return nil, first
}

// OpenOptions say which keys an opened repository trusts and holds.
type OpenOptions struct {
	// Owner is the pinned owner public key: every config must be signed
	// by it. Required.
	Owner keys.OwnerPublic
	// MinSeq is the highest config seq seen before (by this client): a
	// newest config below it is a rollback.
	MinSeq int64
	// Signing, if set, is the backup host's signing key: it must be
	// authorised and not revoked, and its box identity opens the
	// repository secrets.
	Signing *keys.SigningKey
	// OwnerKey, if set, is the owner's private key (for config changes):
	// its box identity opens the repository secrets.
	OwnerKey *keys.OwnerKey
	// Identities decrypt catalogs, packs and the secrets object.
	Identities []age.Identity
}

// Open reads the config objects and verifies them against the pinned
// owner key: the newest that verifies is the config. Config objects that
// do not verify, or that break the chain of prev hashes, are passed over
// and listed in Repository.Problems; if none verifies, Open fails.
func Open(ctx context.Context, st storage.Store, opts OpenOptions) (*Repository, error) {
	seqs, err := listConfigs(ctx, st)
	if err != nil {
		return nil, err
	}
	if len(seqs) == 0 {
		return nil, noConfig(ctx, st)
	}
	if opts.Owner == nil {
		e := &UnpinnedError{Location: st.Location()}
		if c, err := PeekConfig(ctx, st); err == nil {
			e.Claimed, _ = keys.ParseOwnerPublic(c.Owner)
		}
		return nil, e
	}
	if opts.OwnerKey != nil && !opts.OwnerKey.Public().Equal(opts.Owner) {
		return nil, errors.New("the owner key and the pinned owner public key differ")
	}
	pin := opts.Owner.String()
	r := &Repository{Store: st, owner: opts.Owner, host: opts.Signing, ownerKey: opts.OwnerKey,
		identities: opts.Identities, maxSeq: seqs[len(seqs)-1]}
	var (
		newest  *Config
		prevDoc []byte
		claimed keys.OwnerPublic
	)
	for _, seq := range seqs {
		name := ConfigName(seq)
		doc, err := readAll(ctx, st, name, maxConfigDoc)
		if errors.Is(err, storage.ErrNotExist) {
			r.Problems = append(r.Problems, integrity(name, "vanished while read"))
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		var c Config
		if err := openSigned(KindConfig, doc, opts.Owner, &c); err != nil {
			var claim Config
			if ParseConfig(doc, &claim) == nil && claim.Owner != pin {
				if k, err := keys.ParseOwnerPublic(claim.Owner); err == nil {
					claimed = k
				}
			}
			r.Problems = append(r.Problems, integrity(name, "not signed by the owner key %s: passed over", opts.Owner.Fingerprint()))
			continue
		}
		if c.Version != Version {
			return nil, fmt.Errorf("repository format version %d is not supported by this coffer (version %d)", c.Version, Version)
		}
		switch {
		case c.Seq != seq:
			r.Problems = append(r.Problems, integrity(name, "holds config %d (replayed): passed over", c.Seq))
			continue
		case c.Owner != pin:
			r.Problems = append(r.Problems, integrity(name, "names another owner than the key that signed it: passed over"))
			continue
		case newest != nil && c.ID != newest.ID:
			r.Problems = append(r.Problems, integrity(name, "belongs to repository %s: passed over", ShortID(c.ID)))
			continue
		case prevDoc == nil && (c.Seq != 1 || c.Prev != ""):
			r.Problems = append(r.Problems, integrity(name, "the configs before it are missing or not signed by the owner key"))
		case prevDoc != nil && c.Prev != HashHex(prevDoc):
			r.Problems = append(r.Problems, integrity(name, "does not follow %s: a config between them was removed or replaced", ConfigName(newest.Seq)))
		}
		if err := c.validate(); err != nil {
			r.Problems = append(r.Problems, integrity(name, "%v: passed over", err))
			continue
		}
		cc := c
		newest, prevDoc = &cc, doc
	}
	if newest == nil {
		if claimed != nil {
			return nil, &OwnerMismatchError{Location: st.Location(), Claimed: claimed, Pinned: opts.Owner}
		}
		return nil, integrity(ConfigName(seqs[len(seqs)-1]), "no config is signed by the owner key %s", opts.Owner.Fingerprint())
	}
	if newest.ObjectLock != nil {
		if err := newest.ObjectLock.Validate(); err != nil {
			return nil, integrity(ConfigName(newest.Seq), "%w", err)
		}
	}
	if newest.Seq < opts.MinSeq {
		return nil, &IntegrityError{Object: ConfigName(opts.MinSeq), Err: &RollbackError{Newest: newest.Seq, Seen: opts.MinSeq}}
	}
	r.Config, r.configDoc = *newest, prevDoc
	r.Store = locked(st, &r.Config)
	if opts.Signing != nil {
		if err := r.checkHost(opts.Signing); err != nil {
			return nil, err
		}
	}
	if len(r.identities) > 0 {
		// With the data keys, an identity added as a recipient later
		// reads what was stored before it. A recipient from the start
		// does not need them: a damaged data keys object is verify's to
		// report, not a reason to refuse its restore.
		if ids, err := r.loadDataKeys(ctx); err == nil {
			r.dataKeys = ids
			for _, id := range ids {
				r.identities = append(r.identities, id)
			}
		}
	}
	return r, nil
}

// validate checks a config's shape (not its signature).
func (c *Config) validate() error {
	if !validHex(c.ID, 64) {
		return errors.New("invalid repository id")
	}
	if len(c.Recipients) == 0 {
		return errors.New("no recipients")
	}
	if !validHex(c.Secrets.SHA256, 64) || c.Secrets.Name != KeysPrefix+c.Secrets.SHA256 {
		return errors.New("invalid secrets reference")
	}
	if !validHex(c.DataKeys.SHA256, 64) || c.DataKeys.Name != KeysPrefix+c.DataKeys.SHA256 {
		return errors.New("invalid data keys reference")
	}
	if _, err := age.ParseX25519Recipient(c.DataRecipient); err != nil {
		return errors.New("malformed data recipient")
	}
	for _, h := range c.Hosts {
		if _, err := keys.ParsePublicKey(h.Key); err != nil {
			return fmt.Errorf("host: %v", err)
		}
		if _, err := keys.ParseHostBox(h.Box); err != nil {
			return fmt.Errorf("host: %v", err)
		}
	}
	return nil
}

// checkHost checks that the host key may publish snapshots and that the
// config lists its box.
func (r *Repository) checkHost(sk *keys.SigningKey) error {
	key := sk.Public().String()
	if rev := r.Config.Revocation(key); rev != nil {
		return &HostError{Key: key, Revoked: rev}
	}
	h := r.Config.HostEntry(key)
	if h == nil {
		return &HostError{Key: key}
	}
	if h.Box != sk.BoxIdentity().Recipient().String() {
		return integrity(ConfigName(r.Config.Seq), "lists another box recipient for host key %s than the key derives", sk.Public().Fingerprint())
	}
	return nil
}

// Owner returns the pinned owner public key.
func (r *Repository) Owner() keys.OwnerPublic { return r.owner }

// Host returns the host signing key the repository was opened with, or nil.
func (r *Repository) Host() *keys.SigningKey { return r.host }

// CheckWriter checks that sk may publish a snapshot: it is the key the
// repository was opened with (so the secrets came from its box), the
// config authorises it and has not revoked it.
func (r *Repository) CheckWriter(sk *keys.SigningKey) error {
	if r.host == nil || !r.host.Public().Equal(sk.Public()) {
		return errors.New("the repository was opened with another host key than the one that signs")
	}
	return r.checkHost(sk)
}

// signerKey returns the key that must have signed the document (a
// manifest or a repair record) with id id that names signer (as decoded,
// unverified): an authorised host key, or a revoked one whose keep list
// names id.
func (r *Repository) signerKey(id, signer string, doc []byte) (keys.PublicKey, error) {
	k, err := keys.ParsePublicKey(signer)
	if err != nil {
		return nil, fmt.Errorf("signer: %v", err)
	}
	if rev := r.Config.Revocation(signer); rev != nil {
		if rev.Keeps(id, doc) {
			return k, nil
		}
		return nil, fmt.Errorf("signed by host key %s, revoked on %s, and not among the snapshots it signed before (backdated or forged)",
			k.Fingerprint(), rev.Time.Format(time.RFC3339))
	}
	if r.Config.HostEntry(signer) == nil {
		return nil, fmt.Errorf("signed by host key %s, which the repository config does not authorise", k.Fingerprint())
	}
	return k, nil
}

// ConfigEdit changes a copy of the newest config. It may change
// Recipients, Hosts and Revoked; UpdateConfig sets the rest.
type ConfigEdit func(c *Config) error

// UpdateConfig writes the next config: the newest config changed by edit,
// signed by the owner key, with a fresh secrets object holding the same
// secrets encrypted to the new recipients, the owner's box and the
// authorised hosts' boxes. It is written create-if-absent as the seq after
// the highest stored; if another change landed first it returns an error
// wrapping ErrConfigChanged and the repository is unchanged (but for an
// unreferenced secrets object).
func UpdateConfig(ctx context.Context, r *Repository, owner *keys.OwnerKey, edit ConfigEdit) (*Config, error) {
	if !owner.Public().Equal(r.owner) {
		return nil, errors.New("the owner key is not the repository's")
	}
	if err := r.checkNextSeq(); err != nil {
		return nil, err
	}
	secrets, err := r.Secrets(ctx)
	if err != nil {
		return nil, fmt.Errorf("open the repository secrets with the owner key: %w", err)
	}
	next, err := copyConfig(&r.Config)
	if err != nil {
		return nil, err
	}
	if err := edit(next); err != nil {
		return nil, err
	}
	if next.Chunker != r.Config.Chunker {
		return nil, fmt.Errorf("%w: %+v would become %+v", ErrChunkerChange, r.Config.Chunker, next.Chunker)
	}
	if len(next.Recipients) == 0 {
		return nil, ErrNoRecipients
	}
	added, removed := diff(r.Config.Recipients, next.Recipients)
	next.DataRecipient, next.DataKeys = r.Config.DataRecipient, r.Config.DataKeys
	if added || removed {
		if r.dataKeys == nil {
			if len(r.identities) == 0 {
				return nil, ErrNeedRecipientIdentity
			}
			ids, err := r.loadDataKeys(ctx)
			if err != nil {
				return nil, fmt.Errorf("%w: %w", ErrNeedRecipientIdentity, err)
			}
			r.dataKeys = ids
		}
		ids := r.dataKeys
		if removed {
			// A removed recipient knows the data keys so far: what is
			// stored from now on goes to a new one it never sees.
			id, err := age.GenerateX25519Identity()
			if err != nil {
				return nil, err
			}
			ids = append(append([]*age.X25519Identity{}, ids...), id)
			next.DataRecipient = id.Recipient().String()
		}
		if next.DataKeys, err = putDataKeys(ctx, r.Store, next, ids); err != nil {
			return nil, err
		}
		r.dataKeys = ids
	}
	next.Version = Version
	next.ID, next.Owner = r.Config.ID, r.Config.Owner
	next.Seq = r.maxSeq + 1
	next.Prev = HashHex(r.configDoc)
	next.Created = time.Now().UTC().Truncate(time.Second)
	if next.Revoked == nil {
		next.Revoked = []Revocation{}
	}
	next.ObjectLock = r.Config.ObjectLock // the bucket's, not the owner's to change here
	if next.Secrets, err = putSecrets(ctx, r.Store, next, owner, secrets); err != nil {
		return nil, err
	}
	doc, err := putConfig(ctx, r.Store, next, owner)
	if err != nil {
		return nil, err
	}
	r.Config, r.configDoc, r.maxSeq = *next, doc, next.Seq
	return next, nil
}

// MaxConfigSeq is the highest config seq: names have 10 digits, and a
// reader lists only those.
const MaxConfigSeq = 9999999999

// checkNextSeq refuses a change whose config could not be the newest a
// reader sees: its seq (after the highest stored) would not fit in a
// config name, which every reader would pass over while the change
// reported success.
func (r *Repository) checkNextSeq() error {
	if r.maxSeq < MaxConfigSeq {
		return nil
	}
	name := ConfigName(r.maxSeq)
	if r.maxSeq != r.Config.Seq {
		return fmt.Errorf("cannot change the config: %s is not a config signed by the owner key (forged or damaged), "+
			"and the next config number would not fit in a config name; remove %s from the bucket and run the command again", name, name)
	}
	return fmt.Errorf("cannot change the config: %s is the last config number a config name holds", name)
}

// diff reports whether b adds to or removes from a, as sets.
func diff(a, b []string) (added, removed bool) {
	for _, x := range b {
		added = added || !contains(a, x)
	}
	for _, x := range a {
		removed = removed || !contains(b, x)
	}
	return added, removed
}

func copyConfig(c *Config) (*Config, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	var out Config
	return &out, json.Unmarshal(b, &out)
}

// SignedBy returns the snapshots, repair records, repack records and drill records that the host key
// key signed and that verify now, with their documents' SHA-256, for a
// revocation's keep list.
func (r *Repository) SignedBy(ctx context.Context, key keys.PublicKey) ([]Kept, error) {
	ms, _, err := r.Manifests(ctx)
	if err != nil {
		return nil, err
	}
	rps, _, err := r.Repairs(ctx)
	if err != nil {
		return nil, err
	}
	var ids []Kept
	for _, m := range ms {
		if m.Signer == key.String() {
			ids = append(ids, Kept{ID: m.ID, SHA256: m.docSHA256})
		}
	}
	for _, rp := range rps {
		if rp.Signer == key.String() {
			ids = append(ids, Kept{ID: rp.ID, SHA256: rp.docSHA256})
		}
	}
	rks, _, err := r.Repacks(ctx)
	if err != nil {
		return nil, err
	}
	for _, rk := range rks {
		if rk.Signer == key.String() {
			ids = append(ids, Kept{ID: rk.ID, SHA256: rk.docSHA256})
		}
	}
	drills, _, err := r.Drills(ctx)
	if err != nil {
		return nil, err
	}
	for _, d := range drills {
		if d.Signer == key.String() {
			ids = append(ids, Kept{ID: d.ID, SHA256: d.docSHA256})
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i].ID < ids[j].ID })
	return ids, nil
}
