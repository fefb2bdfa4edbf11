"""Mail settings from the environment: ``MAIL_URL`` or ``MAIL_*``, off when unset."""

from __future__ import annotations

import pytest

from webflow.config import mail_settings, parse_mail_url


def test_unset_means_off():
    settings = mail_settings({})
    assert settings["MAIL_SERVER"] is None and settings["MAIL_BACKEND"] == "smtp"


def test_a_url_with_starttls_and_an_encoded_password():
    settings = mail_settings({"MAIL_URL": "smtp://robot%40example.com:p%3Ass%2Fw@mail.example.com:587?tls=1",
                              "MAIL_SERVER": "ignored.example.com"})
    assert {k: settings[k] for k in ("MAIL_SERVER", "MAIL_PORT", "MAIL_USERNAME", "MAIL_PASSWORD",
                                     "MAIL_USE_TLS", "MAIL_USE_SSL")} == {
        "MAIL_SERVER": "mail.example.com", "MAIL_PORT": 587, "MAIL_USERNAME": "robot@example.com",
        "MAIL_PASSWORD": "p:ss/w", "MAIL_USE_TLS": True, "MAIL_USE_SSL": False}


def test_smtps_defaults_to_port_465_and_from_sets_the_sender():
    assert parse_mail_url("smtps://mail.example.com?from=flow@example.com") == {
        "MAIL_SERVER": "mail.example.com", "MAIL_PORT": 465, "MAIL_USERNAME": None, "MAIL_PASSWORD": None,
        "MAIL_USE_SSL": True, "MAIL_USE_TLS": False, "MAIL_DEFAULT_SENDER": "flow@example.com"}


def test_the_variables_one_by_one():
    settings = mail_settings({"MAIL_SERVER": "mail.example.com", "MAIL_PORT": "2525", "MAIL_USE_TLS": "1",
                              "MAIL_DEFAULT_SENDER": "flow@example.com"})
    assert (settings["MAIL_SERVER"], settings["MAIL_PORT"], settings["MAIL_USE_TLS"],
            settings["MAIL_DEFAULT_SENDER"]) == ("mail.example.com", 2525, True, "flow@example.com")


@pytest.mark.parametrize("url", ["http://mail.example.com", "smtp://", "mail.example.com:25",
                                 "smtp://mail.example.com:notaport"])
def test_a_bad_url_is_refused_with_a_clear_message(url):
    with pytest.raises(ValueError, match="MAIL_URL"):
        parse_mail_url(url)
