-- Deadlines and searchable attributes (issue 13, items 3 and 4).
--
-- deadline_at: when the run is cancelled if it has not ended (`timeout=`), NULL for
-- none. The worker holding the run arms it as a timer; a released run is due no later.
ALTER TABLE runs ADD COLUMN deadline_at timestamptz;

-- The run's attributes as one JSON object (NULL: none), for reading a run with them;
-- run_attributes below is what searches read. Both move in the same transaction.
ALTER TABLE runs ADD COLUMN attributes json;

-- One row per attribute of a run: value is its JSON (str, number or bool, shown as
-- set), text the form a search matches (perdure._attributes.attribute_text). A search
-- for key=text reads run_attributes_search, then the runs by primary key; several
-- terms are ANDed, each an IN over that index. A table rather than a jsonb column
-- with a GIN index: the same plan as on SQLite, and a search by text finds 3 and "3".
CREATE TABLE run_attributes (
    run_id text COLLATE "C" NOT NULL,
    key    text COLLATE "C" NOT NULL,
    value  json NOT NULL,
    text   text COLLATE "C" NOT NULL,
    PRIMARY KEY (run_id, key)
);
CREATE INDEX run_attributes_search ON run_attributes (key, text, run_id);

-- The text a search matches, as perdure._attributes.attribute_text makes it: a string
-- itself, a bool true/false, an integral number as an integer (3.0 is 3), any other
-- number in float8's shortest form (Python's repr of the float).
CREATE FUNCTION perdure_attribute_text(p_value json) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE json_typeof(p_value)
        WHEN 'string' THEN p_value #>> '{}'
        WHEN 'number' THEN CASE
            WHEN (p_value::text)::numeric = trunc((p_value::text)::numeric)
                THEN trunc((p_value::text)::numeric)::text
            ELSE ((p_value::text)::float8)::text
        END
        ELSE p_value::text
    END
$$;

-- The deadline and attributes are indexed from the events that carry them, in the
-- transaction that logs them: run_created (written by perdure_create_run, whatever
-- batch carries it) and attributes_set (written by perdure_append). A trigger rather
-- than new arguments to those functions: their signatures stay as every caller knows
-- them, and the WHEN clause keeps every other event off this path.
CREATE FUNCTION perdure_index_event_attributes() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_data json := NEW.data;
BEGIN
    -- json keeps a string's U+0000 (a run's input may hold one), and reading any key of
    -- such a document fails ("cannot be converted to text"). The keys read here never
    -- hold one, so every \u0000 escape (not an escaped backslash before "u0000") is
    -- dropped from the text first.
    IF strpos(NEW.data::text, '\u0000') > 0 THEN
        v_data := regexp_replace(NEW.data::text, '(?<!\\)((?:\\\\)*)\\u0000', '\1', 'g')::json;
    END IF;
    IF NEW.type = 'run_created' AND v_data->>'deadline' IS NOT NULL THEN
        UPDATE runs SET deadline_at = (v_data->>'deadline')::timestamptz
         WHERE id = NEW.run_id;
    END IF;
    INSERT INTO run_attributes (run_id, key, value, text)
    SELECT NEW.run_id, a.key, a.value, perdure_attribute_text(a.value)
      FROM json_each(CASE WHEN NEW.type = 'run_created' THEN v_data->'attributes'
                          ELSE v_data->'values' END) AS a
    ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value, text = excluded.text;
    IF FOUND THEN
        UPDATE runs SET attributes = (
            SELECT json_object_agg(key, value ORDER BY key) FROM run_attributes
             WHERE run_id = NEW.run_id
        ) WHERE id = NEW.run_id;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER events_index_attributes AFTER INSERT ON events FOR EACH ROW
    WHEN (NEW.type IN ('run_created', 'attributes_set'))
    EXECUTE FUNCTION perdure_index_event_attributes();
