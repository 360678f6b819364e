-- A database written by ceasefire-monitor at commit 7bfdf13 (schema step 0004, the
-- 32-hash MinHash): tests/test_store.py's TITLE story and a story whose title is too
-- short for a title key, recorded in one poll of feed 0. Made with sqlite3's iterdump().
BEGIN TRANSACTION;
CREATE TABLE "_sqlite_migrations" (
   "id" INTEGER PRIMARY KEY,
   "migration_set" TEXT,
   "name" TEXT,
   "applied_at" TEXT
);
INSERT INTO "_sqlite_migrations" VALUES(1,'ceasefire-monitor','0001_initial','2026-11-26 10:51:45.974374+00:00');
INSERT INTO "_sqlite_migrations" VALUES(2,'ceasefire-monitor','0002_outbox_failed_at_requeue','2026-11-26 10:51:45.975402+00:00');
INSERT INTO "_sqlite_migrations" VALUES(3,'ceasefire-monitor','0003_feedback','2026-11-26 10:51:45.976968+00:00');
INSERT INTO "_sqlite_migrations" VALUES(4,'ceasefire-monitor','0004_story_keys_without_rowid','2026-11-26 10:51:45.979101+00:00');
CREATE TABLE alerts (
        id INTEGER PRIMARY KEY,
        uid TEXT NOT NULL UNIQUE,
        channel TEXT NOT NULL,
        kind TEXT NOT NULL,
        dedup_key TEXT NOT NULL,
        storyline_id TEXT,
        story_id INTEGER,
        item_id INTEGER,
        feed_url TEXT,
        payload TEXT NOT NULL,
        created_at TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        last_attempt_at TEXT,
        sent_at TEXT, failed_at TEXT, queued_at TEXT,
        UNIQUE (channel, dedup_key)
    );
INSERT INTO "alerts" VALUES(1,'msg_d22227421cca4827963bf116cb7c56ac','hook','storyline.match','storyline.match:cairo-talks:1','cairo-talks',1,1,NULL,'{"type": "storyline.match", "timestamp": "2026-11-26T07:00:00+00:00", "data": {"storyline": {"id": "cairo-talks", "name": "Cairo track"}, "item": {"title": "Hamas delegation arrives in Cairo for truce talks with Egyptian mediators", "link": "https://news.example/g1", "summary": "A Hamas delegation arrived in Cairo on Saturday for talks on a Gaza truce, officials said.", "published": "2026-11-26T07:00:00+00:00", "source": "Outlet A", "feed_url": "http://127.0.0.1:1/a.xml"}, "score": 95.0, "matched_terms": [{"term": "Cairo", "found": "Cairo", "score": 100.0}], "story_id": 1, "sources": [{"source": "Outlet A", "title": "Hamas delegation arrives in Cairo for truce talks with Egyptian mediators", "link": "https://news.example/g1", "published": "2026-11-26T07:00:00+00:00"}]}}','2026-11-26T07:00:00+00:00','pending',0,NULL,NULL,NULL,NULL,NULL);
INSERT INTO "alerts" VALUES(2,'msg_89ae4194f91b45879adc200a2d701843','console','storyline.match','storyline.match:cairo-talks:1','cairo-talks',1,1,NULL,'{"type": "storyline.match", "timestamp": "2026-11-26T07:00:00+00:00", "data": {"storyline": {"id": "cairo-talks", "name": "Cairo track"}, "item": {"title": "Hamas delegation arrives in Cairo for truce talks with Egyptian mediators", "link": "https://news.example/g1", "summary": "A Hamas delegation arrived in Cairo on Saturday for talks on a Gaza truce, officials said.", "published": "2026-11-26T07:00:00+00:00", "source": "Outlet A", "feed_url": "http://127.0.0.1:1/a.xml"}, "score": 95.0, "matched_terms": [{"term": "Cairo", "found": "Cairo", "score": 100.0}], "story_id": 1, "sources": [{"source": "Outlet A", "title": "Hamas delegation arrives in Cairo for truce talks with Egyptian mediators", "link": "https://news.example/g1", "published": "2026-11-26T07:00:00+00:00"}]}}','2026-11-26T07:00:00+00:00','pending',0,NULL,NULL,NULL,NULL,NULL);
INSERT INTO "alerts" VALUES(3,'msg_0f9aefdfaf3543e3a1a7005b894ad6b7','hook','storyline.match','storyline.match:cairo-talks:2','cairo-talks',2,2,NULL,'{"type": "storyline.match", "timestamp": "2026-11-26T07:00:00+00:00", "data": {"storyline": {"id": "cairo-talks", "name": "Cairo track"}, "item": {"title": "Truce talks resume", "link": "https://news.example/g2", "summary": "Egyptian and Qatari mediators met Hamas and Israeli officials in Cairo on Sunday to discuss extending the Gaza truce by two more days and freeing more hostages.", "published": "2026-11-26T07:00:00+00:00", "source": "Outlet A", "feed_url": "http://127.0.0.1:1/a.xml"}, "score": 95.0, "matched_terms": [{"term": "Cairo", "found": "Cairo", "score": 100.0}], "story_id": 2, "sources": [{"source": "Outlet A", "title": "Truce talks resume", "link": "https://news.example/g2", "published": "2026-11-26T07:00:00+00:00"}]}}','2026-11-26T07:00:00+00:00','pending',0,NULL,NULL,NULL,NULL,NULL);
INSERT INTO "alerts" VALUES(4,'msg_7a9c600c00e24415aff63189bd7731e8','console','storyline.match','storyline.match:cairo-talks:2','cairo-talks',2,2,NULL,'{"type": "storyline.match", "timestamp": "2026-11-26T07:00:00+00:00", "data": {"storyline": {"id": "cairo-talks", "name": "Cairo track"}, "item": {"title": "Truce talks resume", "link": "https://news.example/g2", "summary": "Egyptian and Qatari mediators met Hamas and Israeli officials in Cairo on Sunday to discuss extending the Gaza truce by two more days and freeing more hostages.", "published": "2026-11-26T07:00:00+00:00", "source": "Outlet A", "feed_url": "http://127.0.0.1:1/a.xml"}, "score": 95.0, "matched_terms": [{"term": "Cairo", "found": "Cairo", "score": 100.0}], "story_id": 2, "sources": [{"source": "Outlet A", "title": "Truce talks resume", "link": "https://news.example/g2", "published": "2026-11-26T07:00:00+00:00"}]}}','2026-11-26T07:00:00+00:00','pending',0,NULL,NULL,NULL,NULL,NULL);
CREATE TABLE channels (
        name TEXT PRIMARY KEY,
        type TEXT NOT NULL,
        disabled_at TEXT,
        disabled_reason TEXT,
        consecutive_failures INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT,
        last_error TEXT
    );
INSERT INTO "channels" VALUES('hook','webhook',NULL,NULL,0,NULL,NULL);
INSERT INTO "channels" VALUES('console','console',NULL,NULL,0,NULL,NULL);
CREATE TABLE entries (
        feed_url TEXT NOT NULL,
        guid TEXT NOT NULL,
        item_id INTEGER NOT NULL REFERENCES items(id),
        PRIMARY KEY (feed_url, guid)
    ) WITHOUT ROWID;
INSERT INTO "entries" VALUES('http://127.0.0.1:1/a.xml','g1',1);
INSERT INTO "entries" VALUES('http://127.0.0.1:1/a.xml','g2',2);
CREATE TABLE feedback (
        id INTEGER PRIMARY KEY,
        storyline_id TEXT NOT NULL,
        example_key TEXT NOT NULL,   -- 'item:<items.id>' or 'label:<id in the labels file>'
        item_id INTEGER,             -- the stored item a verdict is about, if any
        title TEXT NOT NULL,
        summary TEXT NOT NULL,
        label INTEGER NOT NULL,      -- 1: belongs to the storyline, 0: does not
        verdict TEXT,                -- 'right' / 'wrong' for a desk verdict; NULL for imports
        source TEXT NOT NULL,        -- 'desk' or 'labels:<file name>'
        created_at TEXT NOT NULL,
        UNIQUE (storyline_id, example_key)
    );
CREATE TABLE feeds (
        url TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        etag TEXT,
        last_modified TEXT,
        body_hash TEXT,
        last_fetch_at TEXT,
        last_success_at TEXT,
        last_status INTEGER,
        last_error TEXT,
        last_error_code TEXT,
        consecutive_errors INTEGER NOT NULL DEFAULT 0,
        next_poll_at TEXT,
        items_seen INTEGER NOT NULL DEFAULT 0,
        first_poll_done INTEGER NOT NULL DEFAULT 0,
        down_alerted INTEGER NOT NULL DEFAULT 0
    );
INSERT INTO "feeds" VALUES('http://127.0.0.1:1/a.xml','Outlet A',NULL,NULL,NULL,'2026-11-26T07:00:00+00:00','2026-11-26T07:00:00+00:00',200,NULL,NULL,0,'2026-11-26T07:01:00+00:00',2,1,0);
INSERT INTO "feeds" VALUES('http://127.0.0.1:1/b.xml','Outlet B',NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,0,NULL,0,0,0);
CREATE TABLE items (
        id INTEGER PRIMARY KEY,
        feed_url TEXT NOT NULL,
        source TEXT NOT NULL,
        guid TEXT NOT NULL,
        url TEXT,
        title TEXT NOT NULL,
        summary TEXT NOT NULL,
        published TEXT NOT NULL,
        published_known INTEGER NOT NULL,
        first_seen TEXT NOT NULL,
        story_id INTEGER NOT NULL REFERENCES stories(id)
    );
INSERT INTO "items" VALUES(1,'http://127.0.0.1:1/a.xml','Outlet A','g1','https://news.example/g1','Hamas delegation arrives in Cairo for truce talks with Egyptian mediators','A Hamas delegation arrived in Cairo on Saturday for talks on a Gaza truce, officials said.','2026-11-26T07:00:00+00:00',1,'2026-11-26T07:00:00+00:00',1);
INSERT INTO "items" VALUES(2,'http://127.0.0.1:1/a.xml','Outlet A','g2','https://news.example/g2','Truce talks resume','Egyptian and Qatari mediators met Hamas and Israeli officials in Cairo on Sunday to discuss extending the Gaza truce by two more days and freeing more hostages.','2026-11-26T07:00:00+00:00',1,'2026-11-26T07:00:00+00:00',2);
CREATE TABLE learned_models (
        storyline_id TEXT PRIMARY KEY,
        fingerprint TEXT NOT NULL,
        model TEXT NOT NULL,
        trained_at TEXT NOT NULL
    );
CREATE TABLE matches (
        item_id INTEGER NOT NULL REFERENCES items(id),
        storyline_id TEXT NOT NULL,
        story_id INTEGER NOT NULL,
        score REAL NOT NULL,
        hits TEXT NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (item_id, storyline_id)
    );
INSERT INTO "matches" VALUES(1,'cairo-talks',1,95.0,'[{"term": "Cairo", "found": "Cairo", "score": 100.0, "field": "title"}]','2026-11-26T07:00:00+00:00');
INSERT INTO "matches" VALUES(2,'cairo-talks',2,95.0,'[{"term": "Cairo", "found": "Cairo", "score": 100.0, "field": "title"}]','2026-11-26T07:00:00+00:00');
CREATE TABLE stories (
        id INTEGER PRIMARY KEY,
        first_item_id INTEGER,
        published REAL NOT NULL,
        shingles BLOB NOT NULL
    );
INSERT INTO "stories" VALUES(1,1,1795676400.0,X'EA9B0702EB629F11A39F25149247451A13ED31262B57E02DDB534C34C4D9823683B8A441B7040260417E62B801D40BBB782A65C557DAA7FD2AA213FF');
INSERT INTO "stories" VALUES(2,2,1795676400.0,X'2927F30EB1856E152161C031117931320BF67350C45EC55116E19F56B70402601C4C8C727053AD7F9596688AA444D18C37488D920AEE9F9468A57AA001D40BBB4D1182F69610AFF64D5351FB6F1E0EFD445DD9FE');
CREATE TABLE "story_keys" (key INTEGER NOT NULL, published REAL NOT NULL, story_id INTEGER NOT NULL, PRIMARY KEY (key, published, story_id)) WITHOUT ROWID;
INSERT INTO "story_keys" VALUES(908453972,1795676400.0,2);
INSERT INTO "story_keys" VALUES(3570406105,1795676400.0,1);
INSERT INTO "story_keys" VALUES(6934045982,1795676400.0,1);
INSERT INTO "story_keys" VALUES(8395157248,1795676400.0,2);
INSERT INTO "story_keys" VALUES(10477409969,1795676400.0,1);
INSERT INTO "story_keys" VALUES(12868974933,1795676400.0,2);
INSERT INTO "story_keys" VALUES(13005829799,1795676400.0,2);
INSERT INTO "story_keys" VALUES(15414982608,1795676400.0,1);
INSERT INTO "story_keys" VALUES(19206356389,1795676400.0,2);
INSERT INTO "story_keys" VALUES(19816332077,1795676400.0,1);
INSERT INTO "story_keys" VALUES(22114026061,1795676400.0,2);
INSERT INTO "story_keys" VALUES(23858233491,1795676400.0,1);
INSERT INTO "story_keys" VALUES(26067305540,1795676400.0,2);
INSERT INTO "story_keys" VALUES(28941385553,1795676400.0,1);
INSERT INTO "story_keys" VALUES(31813845704,1795676400.0,2);
INSERT INTO "story_keys" VALUES(33964689868,1795676400.0,1);
INSERT INTO "story_keys" VALUES(35591227927,1795676400.0,1);
INSERT INTO "story_keys" VALUES(38226538137,1795676400.0,2);
INSERT INTO "story_keys" VALUES(41134190298,1795676400.0,2);
INSERT INTO "story_keys" VALUES(42571674060,1795676400.0,1);
INSERT INTO "story_keys" VALUES(45505922145,1795676400.0,2);
INSERT INTO "story_keys" VALUES(45704878854,1795676400.0,1);
INSERT INTO "story_keys" VALUES(48933495748,1795676400.0,1);
INSERT INTO "story_keys" VALUES(48937465359,1795676400.0,2);
INSERT INTO "story_keys" VALUES(53802184046,1795676400.0,1);
INSERT INTO "story_keys" VALUES(53802184046,1795676400.0,2);
INSERT INTO "story_keys" VALUES(56354839197,1795676400.0,2);
INSERT INTO "story_keys" VALUES(56536618895,1795676400.0,1);
INSERT INTO "story_keys" VALUES(62901436108,1795676400.0,1);
INSERT INTO "story_keys" VALUES(63074693726,1795676400.0,2);
INSERT INTO "story_keys" VALUES(66425591564,1795676400.0,2);
INSERT INTO "story_keys" VALUES(66987203813,1795676400.0,1);
INSERT INTO "story_keys" VALUES(70495592339,1795676400.0,1);
CREATE UNIQUE INDEX "idx__sqlite_migrations_migration_set_name"
    ON "_sqlite_migrations" ("migration_set", "name");
CREATE INDEX items_url ON items (url);
CREATE INDEX items_story ON items (story_id);
CREATE INDEX entries_item ON entries (item_id);
CREATE INDEX matches_storyline ON matches (storyline_id, created_at);
CREATE INDEX alerts_due ON alerts (channel, status, id);
CREATE INDEX alerts_dedup ON alerts (dedup_key);
CREATE INDEX alerts_status ON alerts (status, id);
COMMIT;
