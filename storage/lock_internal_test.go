package storage

import (
	"context"
	"io"
	"slices"
	"strings"
	"testing"
)

// fakeVersions lists a fixed sequence of versions.
type fakeVersions struct {
	Store
	list []ObjectVersion
}

func (f *fakeVersions) Versioning(context.Context) (bool, error) { return true, nil }

func (f *fakeVersions) ListVersions(_ context.Context, prefix string, fn func(ObjectVersion) error) error {
	for _, v := range f.list {
		if strings.HasPrefix(v.Name, prefix) {
			if err := fn(v); err != nil {
				return err
			}
		}
	}
	return nil
}

func (f *fakeVersions) OpenVersion(_ context.Context, name, id string, _, _ int64) (io.ReadCloser, error) {
	return io.NopCloser(strings.NewReader(name + "@" + id)), nil
}

func ver(name, id string) ObjectVersion {
	return ObjectVersion{ObjectInfo: ObjectInfo{Name: name, Size: int64(len(id))}, VersionID: id}
}

func marker(name string) ObjectVersion {
	return ObjectVersion{ObjectInfo: ObjectInfo{Name: name}, VersionID: "dm", DeleteMarker: true}
}

// TestFirstVersionsOrders: the first version of each name is found, and
// overwrites and deletes are reported, whether the listing interleaves
// delete markers with the versions (S3's order) or puts a page's markers
// first (versitygw's).
func TestFirstVersionsOrders(t *testing.T) {
	ctx := context.Background()
	interleaved := []ObjectVersion{
		ver("a", "a1"),
		marker("b"), ver("b", "b1"),
		ver("c", "c3"), ver("c", "c2"), ver("c", "c1"),
		marker("d"), // a marker over a name never written
		ver("e", "e1"),
	}
	markersFirst := []ObjectVersion{
		marker("b"), marker("d"),
		ver("a", "a1"), ver("b", "b1"), ver("c", "c3"), ver("c", "c2"), ver("c", "c1"), ver("e", "e1"),
	}
	for name, list := range map[string][]ObjectVersion{"interleaved": interleaved, "markers first": markersFirst} {
		t.Run(name, func(t *testing.T) {
			fv := &fakeVersions{list: list}
			s := WithFirstVersions(fv, fv)
			var names, ids []string
			err := s.List(ctx, "", func(oi ObjectInfo) error {
				names = append(names, oi.Name)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if want := []string{"a", "b", "c", "e"}; !slices.Equal(names, want) {
				t.Fatalf("List = %q, want %q", names, want)
			}
			for _, n := range names {
				rc, err := s.Open(ctx, n, 0, -1)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(rc)
				ids = append(ids, string(b))
			}
			if want := []string{"a@a1", "b@b1", "c@c1", "e@e1"}; !slices.Equal(ids, want) {
				t.Fatalf("read %q, want the first versions %q", ids, want)
			}
			// A fresh store resolves names without a listing first.
			fresh := WithFirstVersions(fv, fv)
			if oi, err := fresh.Stat(ctx, "c"); err != nil || oi.Size != 2 {
				t.Fatalf("Stat(c) = %+v, %v", oi, err)
			}
			if _, err := fresh.Stat(ctx, "d"); err == nil {
				t.Fatal("Stat of a name with only a delete marker succeeded")
			}
			got, err := s.(Overwrites).Overwritten(ctx, "")
			if err != nil {
				t.Fatal(err)
			}
			if want := []string{"b", "c"}; !slices.Equal(got, want) {
				t.Fatalf("Overwritten = %q, want %q", got, want)
			}
		})
	}
}
