-- Deadlines and searchable attributes (issue 13, items 3 and 4).
--
-- deadline_at: when the run is cancelled if it has not ended (`timeout=`), NULL for
-- none. The worker holding the run arms it as a timer; a released run is due no later.
ALTER TABLE runs ADD COLUMN deadline_at INTEGER;

-- The run's attributes as one JSON object (NULL: none), for reading a run with them;
-- run_attributes below is what searches read. Both move in the same transaction.
ALTER TABLE runs ADD COLUMN attributes TEXT;

-- One row per attribute of a run: value is its JSON (str, number or bool, shown as
-- set), text the form a search matches (perdure._attributes.attribute_text). A search
-- for key=text reads run_attributes_search, then the runs by primary key; several
-- terms are ANDed, each an IN over that index. Rows go with their run: runs are never
-- deleted.
CREATE TABLE run_attributes (
    run_id TEXT NOT NULL,
    key    TEXT NOT NULL,
    value  TEXT NOT NULL,
    text   TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
) WITHOUT ROWID;
CREATE INDEX run_attributes_search ON run_attributes (key, text, run_id);
