"""the data explorer: text search indexes and the export exclusion of an item

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 17:00:00

SQLite: FTS5 tables over item.prompt and candidate.text (external content, kept by triggers), one with the
unicode61 tokenizer (words) and one with the trigram tokenizer (substrings). PostgreSQL: GIN indexes on the
'simple' tsvector of the prompt's strings and of each candidate's text (words), and pg_trgm GIN indexes on the same
text (substrings) when the extension can be created. See docs/explorer.md.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# (FTS5 table, source table, column): words (unicode61) and substrings (trigram) of prompts and answers.
FTS = [
    ('item_words', 'item', 'prompt'),
    ('item_trigrams', 'item', 'prompt'),
    ('candidate_words', 'candidate', 'text'),
    ('candidate_trigrams', 'candidate', 'text'),
]
# A prompt's text: its JSON strings decoded (SQLite stores non-ASCII as \u escapes), a chat's roles left out.
PROMPT_TEXT = "(SELECT group_concat(value, ' ') FROM json_tree({row}.prompt) WHERE type = 'text' AND key IS NOT 'role')"


def _sqlite_upgrade() -> None:
    for table, source, column in FTS:
        tokenizer = 'trigram' if table.endswith('trigrams') else 'unicode61 remove_diacritics 2'
        if source == 'item':
            # Contentless: it indexes the decoded text, not the stored JSON; deleting gives the same text back.
            options, new, old = "content=''", PROMPT_TEXT.format(row='new'), PROMPT_TEXT.format(row='old')
        else:
            options, new, old = f"content='{source}', content_rowid='id'", f'new.{column}', f'old.{column}'
        op.execute(f"CREATE VIRTUAL TABLE {table} USING fts5({column}, {options}, tokenize='{tokenizer}')")
        insert = f'INSERT INTO {table}(rowid, {column}) VALUES (new.id, {new});'
        delete = f"INSERT INTO {table}({table}, rowid, {column}) VALUES ('delete', old.id, {old});"
        # Only the indexed column's changes touch the index (a lease updating item.claims does not).
        op.execute(f'CREATE TRIGGER {table}_ai AFTER INSERT ON {source} BEGIN {insert} END')
        op.execute(f'CREATE TRIGGER {table}_ad AFTER DELETE ON {source} BEGIN {delete} END')
        op.execute(f'CREATE TRIGGER {table}_au AFTER UPDATE OF {column} ON {source} BEGIN {delete} {insert} END')
        if source == 'item':
            op.execute(f"INSERT INTO {table}(rowid, {column}) SELECT id, {PROMPT_TEXT.format(row='item')} FROM item")
        else:
            op.execute(f"INSERT INTO {table}({table}) VALUES ('rebuild')")


def _postgres_upgrade() -> None:
    # Words: the 'simple' configuration (no stemming, any language), over the prompt's strings and the answers.
    op.execute(
        "CREATE INDEX ix_item_prompt_words ON item USING gin "
        "(jsonb_to_tsvector('simple'::regconfig, prompt, '[\"string\"]'::jsonb))"
    )
    op.execute("CREATE INDEX ix_candidate_text_words ON candidate USING gin (to_tsvector('simple'::regconfig, text))")
    # Substrings: pg_trgm when this role may create it; without it substring search scans (docs/explorer.md).
    bind = op.get_bind()
    savepoint = bind.begin_nested()
    try:
        bind.exec_driver_sql('CREATE EXTENSION IF NOT EXISTS pg_trgm')
    except sa.exc.DBAPIError:
        savepoint.rollback()
        return
    savepoint.commit()
    op.execute('CREATE INDEX ix_item_prompt_trgm ON item USING gin ((prompt::text) gin_trgm_ops)')
    op.execute('CREATE INDEX ix_candidate_text_trgm ON candidate USING gin (text gin_trgm_ops)')


def upgrade() -> None:
    # Plain ADD COLUMN (no batch copy on SQLite: copying the item table would drop the search triggers).
    op.add_column('item', sa.Column('excluded_from_export', sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column('item', sa.Column('review_requested', sa.Boolean(), nullable=False, server_default=sa.false()))
    if op.get_bind().dialect.name == 'postgresql':
        _postgres_upgrade()
    else:
        _sqlite_upgrade()


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        names = ('ix_item_prompt_words', 'ix_candidate_text_words', 'ix_item_prompt_trgm', 'ix_candidate_text_trgm')
        for name in names:
            op.execute(f'DROP INDEX IF EXISTS {name}')
    else:
        for table, _, _ in FTS:
            for suffix in ('ai', 'ad', 'au'):
                op.execute(f'DROP TRIGGER IF EXISTS {table}_{suffix}')
            op.execute(f'DROP TABLE IF EXISTS {table}')
    with op.batch_alter_table('item', schema=None) as batch_op:
        batch_op.drop_column('review_requested')
        batch_op.drop_column('excluded_from_export')
