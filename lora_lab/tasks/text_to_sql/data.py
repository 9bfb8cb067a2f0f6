"""Text-to-SQL data module: a `SqlExample` is prompted with its table and question (`render_prompt`,
``task.prompt_rows`` table rows) and answered with its gold SQL; batching is the generation family's."""

from __future__ import annotations

from lora_lab.tasks.generation.data import GenerationDataModule
from lora_lab.tasks.text_to_sql.wikisql import SqlExample, render_prompt


class TextToSqlDataModule(GenerationDataModule):
    def render(self, example: SqlExample) -> tuple[str, str]:
        return render_prompt(example.question, example.table, self.task.prompt_rows), example.gold_sql
