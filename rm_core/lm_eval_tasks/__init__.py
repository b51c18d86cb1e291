"""lm-eval tasks for the text track: YAML templates, their functions, and the evaluation runner.

``build.build_task_dir(out_dir, paths)`` renders the templates with absolute data paths into a
results folder; ``run.run_tasks(lm, task_dir, tasks)`` evaluates there and returns the summary
and one row per example. Never point lm-eval at ``templates/`` itself.
"""
