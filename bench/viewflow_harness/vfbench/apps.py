from django.apps import AppConfig


class VfbenchConfig(AppConfig):
    name = "vfbench"
