-- The counties a partitioned run covers are those with a version. Every write since migration
-- 9 gives its counties one; records stored before it get theirs here. (Listing them from the
-- records themselves read the whole county index: 1.1 s per run for a province.)
INSERT INTO division_versions (feed, division, version) SELECT DISTINCT feed, division, 1 FROM records WHERE division IS NOT NULL ON CONFLICT (feed, division) DO NOTHING;

-- Every month's jobs read every county digest whole (1.1 GB of JSON for a province) and write
-- their findings. PostgreSQL compresses long text with pglz unless told otherwise, and
-- decompressing the digests alone took 3.3 s of the server's time per run; lz4 is several
-- times faster both ways. A server built without lz4 keeps pglz.
-- postgres: DO $$ BEGIN ALTER TABLE registry_digests ALTER COLUMN body SET COMPRESSION lz4; ALTER TABLE partition_results ALTER COLUMN findings SET COMPRESSION lz4; EXCEPTION WHEN feature_not_supported THEN NULL; END $$;
