-- Which registry persons each write changed, by county and the county's registry version the
-- write moved it to (a person who moved is logged in both counties). A county's digest is
-- brought up to date from the persons logged since it was made instead of being made again
-- from the whole county; the entries a digest has taken in are deleted when it is saved. A bulk
-- load logs nothing and drops the digests of the counties it wrote instead.
CREATE TABLE registry_changes (
    division    TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    record_key  TEXT    NOT NULL
);
CREATE INDEX registry_changes_by_division ON registry_changes(division, version);
