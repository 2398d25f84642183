package repo

import (
	"context"

	"filippo.io/age"

	"github.com/cofferhq/coffer/storage"
)

// PutPrivate seals p to the recipients only (the backup host cannot read it
// back) and stores it under private/<sha256>.
func PutPrivate(ctx context.Context, st storage.Store, p *Private, recipients ...age.Recipient) (ObjectRef, error) {
	return PutSealed(ctx, st, PrivatePrefix, p, recipients...)
}

// ReadPrivate reads, decrypts and checks snapshot m's private part: the
// object's size and hash against the manifest, then that it belongs to m
// (Private.Check). It needs the identity.
func (r *Repository) ReadPrivate(ctx context.Context, m *Manifest) (*Private, error) {
	if len(r.identities) == 0 {
		return nil, ErrNoIdentity
	}
	ct, err := r.ReadObject(ctx, m.Private)
	if err != nil {
		return nil, err
	}
	var p Private
	if err := Unseal(ct, &p, r.identities...); err != nil {
		return nil, decryptError(m.Private.Name, err)
	}
	if err := p.Check(m); err != nil {
		return nil, integrity(m.Private.Name, "%v", err)
	}
	return &p, nil
}
