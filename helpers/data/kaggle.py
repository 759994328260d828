"""The Kaggle download of notebook 01 (``DATA_DIR=kaggle``): kagglehub, once per folder,
every failure one sentence that says what to do."""

from __future__ import annotations

from pathlib import Path

from helpers.errors import UserError


def download(slug: str, target: Path) -> Path:
    """Download and unzip the Kaggle data set ``slug`` into ``target`` once (kagglehub).

    Any failure (no credentials, refused credentials, no network) becomes one UserError
    sentence; the client's SystemExit never escapes.
    """
    marker = target / ".download_complete"  # hidden: discovery ignores it
    if marker.is_file():
        return target
    try:
        import kagglehub

        kagglehub.dataset_download(slug, output_dir=str(target))
    except KeyboardInterrupt:
        raise
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - every failure becomes one sentence
        raise UserError(_kaggle_failure(exc, slug)) from None
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(slug + "\n")
    return target


def _kaggle_failure(exc: BaseException, slug: str) -> str:
    """One sentence for a failed Kaggle download, saying what to do."""
    what = type(exc).__name__
    by_hand = (f"or download https://www.kaggle.com/datasets/{slug} by hand, unzip it and pass "
               "its folder as DATA_DIR (--data-dir)")
    credentials = "KAGGLE_USERNAME and KAGGLE_KEY, or ~/.kaggle/kaggle.json"
    if isinstance(exc, ImportError):
        return f"The Kaggle client is not installed ({exc}): pip install kagglehub, {by_hand}."
    if _is_auth_error(exc):
        return (f"Kaggle did not accept the credentials for {slug} ({what}): set your API token "
                f"({credentials}) and retry, {by_hand}.")
    if _is_network_error(exc):
        return (f"Could not reach Kaggle to download {slug} ({what}; no network?): retry online with "
                f"your API token set ({credentials}), {by_hand}.")
    detail = " ".join(str(exc).split())[:200]  # one line, whatever the client printed
    return (f"The Kaggle download of {slug} failed ({what}: {detail}): check your API token "
            f"({credentials}) and retry, {by_hand}.")


def _is_auth_error(exc: BaseException) -> bool:
    status = getattr(getattr(exc, "response", None), "status_code", None)
    name = type(exc).__name__
    return isinstance(exc, SystemExit) or status in (401, 403) or name in (
        "UnauthenticatedError", "CredentialError")


def _is_network_error(exc: BaseException) -> bool:
    import socket
    import urllib.error

    kinds: list[type[BaseException]] = [ConnectionError, TimeoutError, socket.gaierror,
                                        urllib.error.URLError]
    try:
        import requests

        kinds.append(requests.RequestException)
    except ImportError:
        pass
    return isinstance(exc, tuple(kinds))
