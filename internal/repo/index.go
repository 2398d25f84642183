package repo

import "time"

// Index maps chunk ids to their location in packs. The backup host writes
// one index object per backup (the chunks that backup added), encrypted to
// the recipients and to an index key derived from the signing key, so an
// encrypt-only host can read and extend it. `coffer repair` writes one
// that lists every pack it checked (see Repair). Backups read only index
// objects that a verified manifest or repair record references
// (Repository.LoadDedup).
type Index struct {
	Version int         `json:"version"`
	Packs   []IndexPack `json:"packs"`
}

// IndexPack lists the chunks stored in one pack.
type IndexPack struct {
	SHA256 string       `json:"sha256"`
	Size   int64        `json:"size"`
	Chunks []IndexChunk `json:"chunks"`
	// ModTime is set in a repair's index: the time the store listed for
	// the pack when the repair checked it.
	ModTime time.Time `json:"mtime,omitzero"`
}

// IndexChunk is one chunk inside a pack.
type IndexChunk struct {
	ID     ChunkID `json:"id"`
	Offset int64   `json:"o"`
	Length int64   `json:"l"`
	Raw    int64   `json:"r"`
	Zstd   bool    `json:"z,omitempty"`
}
