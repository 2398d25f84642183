package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"filippo.io/age"

	"github.com/cofferhq/coffer/internal/keys"
	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/storage"
)

// RepairOptions of a repair.
type RepairOptions struct {
	// Repo must be opened with the signing key (it signs the repair
	// record) and an identity (it decrypts the packs).
	Repo    *repo.Repository
	Signing *keys.SigningKey
	// Workers check packs in parallel; default 2 (each holds a pack's
	// ciphertext and plaintext, about 40 MiB).
	Workers int
	Logger  *slog.Logger
}

// RepairResult is what a repair found and wrote.
type RepairResult struct {
	Record *repo.Repair
	// Good is the number of packs in the rebuilt index; Bytes their size.
	Good  int
	Bytes int64
}

// maxPack bounds a pack a repair reads whole: a pack is at most the
// target size plus a chunk plus its trailer (about 21 MiB by default).
const maxPack = 1 << 30

// Repair rebuilds the index from the packs themselves and publishes it as
// a signed repair record (repairs/<id>). Every pack the store lists is read
// whole: its SHA-256 must equal its name, it must decrypt, its trailer must
// parse, and every chunk the trailer lists must decode to its recorded
// length and have the keyed id the trailer gives. A pack that fails any of
// these is left out of the index and named damaged in the record; from
// then on no backup deduplicates against it, so the next backup stores its
// chunks again (snapshots that already reference it stay damaged: verify
// names them). The record also vouches for the packs it checked, at the
// modification time the store listed, for backups whose ledger saw them
// change.
func Repair(ctx context.Context, opts RepairOptions) (*RepairResult, error) {
	r := opts.Repo
	if opts.Signing == nil {
		return nil, ErrNoSigningKey
	}
	if !opts.Signing.Public().Equal(r.Pinned) {
		return nil, &repo.KeyMismatchError{Repo: r.Pinned.String(), Ours: opts.Signing.Public().String()}
	}
	if !r.HasIdentity() {
		return nil, repo.ErrNoIdentity
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	workers := opts.Workers
	if workers <= 0 {
		workers = 2
	}
	start := time.Now().UTC()
	recipients, err := r.Recipients()
	if err != nil {
		return nil, err
	}
	secrets, err := r.Secrets(ctx)
	if err != nil {
		return nil, err
	}
	idFunc, err := r.ChunkIDFunc(ctx)
	if err != nil {
		return nil, err
	}
	// A wrong identity would make every pack look damaged: check it on
	// the secrets object first.
	ct, err := r.ReadObject(ctx, r.Config.Secrets)
	if err != nil {
		return nil, err
	}
	if _, err := repo.Decrypt(ct, r.Identities()...); err != nil {
		var nm *age.NoIdentityMatchError
		if errors.As(err, &nm) {
			return nil, &repo.WrongIdentityError{Object: r.Config.Secrets.Name}
		}
		return nil, &repo.IntegrityError{Object: r.Config.Secrets.Name, Err: fmt.Errorf("decrypt: %w", err)}
	}

	var packs []storage.ObjectInfo
	if err := r.Store.List(ctx, repo.DataPrefix, func(oi storage.ObjectInfo) error {
		packs = append(packs, oi)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list packs: %w", err)
	}
	log.Info("checking packs", "packs", len(packs))

	var (
		mu      sync.Mutex
		good    []repo.IndexPack
		damaged []repo.DamagedPack
		bytesOK int64
		first   error
		wg      sync.WaitGroup
		next    = make(chan storage.ObjectInfo)
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for oi := range next {
				ip, bad, err := checkPack(ctx, r, oi, idFunc)
				mu.Lock()
				switch {
				case err != nil:
					if first == nil {
						first = err
					}
				case bad != "":
					log.Info("damaged pack", "pack", oi.Name, "error", bad)
					damaged = append(damaged, repo.DamagedPack{SHA256: packSum(oi.Name), Size: oi.Size, Error: bad})
				case ip != nil:
					good = append(good, *ip)
					bytesOK += oi.Size
				}
				mu.Unlock()
			}
		}()
	}
	for _, oi := range packs {
		if ctx.Err() != nil {
			break
		}
		next <- oi
	}
	close(next)
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	if first != nil {
		return nil, first
	}
	sort.Slice(good, func(i, j int) bool { return good[i].SHA256 < good[j].SHA256 })
	sort.Slice(damaged, func(i, j int) bool { return damaged[i].SHA256 < damaged[j].SHA256 })

	ix := repo.Index{Version: repo.Version, Packs: good}
	if ix.Packs == nil {
		ix.Packs = []repo.IndexPack{}
	}
	ref, err := repo.PutSealed(ctx, r.Store, repo.IndexPrefix, ix, append(recipients, secrets.IndexIdentity.Recipient())...)
	if err != nil {
		return nil, err
	}
	rec := &repo.Repair{Version: repo.Version, ID: repo.NewID(), Repo: r.Config.ID, Time: start, Index: ref,
		Checked: len(packs), Damaged: damaged}
	if rec.Damaged == nil {
		rec.Damaged = []repo.DamagedPack{}
	}
	if err := repo.WriteRepair(ctx, r.Store, rec, opts.Signing); err != nil {
		return nil, err
	}
	return &RepairResult{Record: rec, Good: len(good), Bytes: bytesOK}, nil
}

func packSum(name string) string { return name[strings.LastIndexByte(name, '/')+1:] }

// checkPack reads one pack whole and checks it. It returns the pack's index
// entry when it is good, a description when it is damaged, or an error
// when the check itself failed (storage, cancellation). A pack that
// vanished since the listing is neither.
func checkPack(ctx context.Context, r *repo.Repository, oi storage.ObjectInfo, idFunc func([]byte) repo.ChunkID) (*repo.IndexPack, string, error) {
	sum := packSum(oi.Name)
	if oi.Name != repo.PackName(sum) || len(sum) != 64 {
		return nil, "not a pack name", nil
	}
	if oi.Size > maxPack {
		return nil, fmt.Sprintf("%d bytes: larger than any pack", oi.Size), nil
	}
	rc, err := r.Store.Open(ctx, oi.Name, 0, -1)
	if errors.Is(err, storage.ErrNotExist) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("read %s: %w", oi.Name, err)
	}
	ct, err := io.ReadAll(io.LimitReader(rc, maxPack+1))
	rc.Close()
	if err != nil {
		return nil, "", fmt.Errorf("read %s: %w", oi.Name, err)
	}
	if repo.HashHex(ct) != sum {
		return nil, "content does not match its name (changed or damaged)", nil
	}
	plain, err := repo.Decrypt(ct, r.Identities()...)
	if err != nil {
		return nil, "does not decrypt with the identity", nil
	}
	chunks, err := repo.ParsePackTrailer(plain)
	if err != nil {
		return nil, err.Error(), nil
	}
	var raw []byte
	for i, c := range chunks {
		data := plain[c.Offset : c.Offset+c.Length]
		if c.Zstd {
			raw, err = repo.Decompress(raw[:0], data, c.Raw)
			if err != nil {
				return nil, fmt.Sprintf("chunk %d: %v", i, err), nil
			}
			data = raw
		} else if int64(len(data)) != c.Raw {
			return nil, fmt.Sprintf("chunk %d: %d bytes, want %d", i, len(data), c.Raw), nil
		}
		if idFunc(data) != c.ID {
			return nil, fmt.Sprintf("chunk %d: its content does not match its id", i), nil
		}
	}
	return &repo.IndexPack{SHA256: sum, Size: int64(len(ct)), Chunks: chunks, ModTime: oi.ModTime.UTC()}, "", nil
}
