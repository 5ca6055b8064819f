"""The review page: a small tornado app over the review workflow (`tre review serve`).

Two ways to run, same pages:
- standalone on this machine, with its own login (TRE password + TOTP code, as the hub's);
- as the JupyterHub service `tre-review` (`tre review serve --hub`, started by the hub), where
  the hub's OAuth logs people in and the page lives at `/services/tre-review/`.

Officers see the queue, each request's outputs with their check reports and previews, vote,
submit reviews, release and download bundles. Researchers see their projects' queued outputs,
make requests, add outputs with their context, submit and follow them. Everything is a call
of `tre.output_check.requests.Requests`, in a worker thread, so the rules and the audit are
the CLI's. Forms carry tornado's XSRF token; pages run no scripts.
"""

SERVICE_NAME = "tre-review"  # the hub service; its pages are at /services/tre-review/
