// Entry point: mounts the app and starts it (silent sign-in from the keyring, if possible).
import { mount } from 'svelte';
import './app.css';
import App from './App.svelte';
import { app } from './lib/app.svelte';

mount(App, { target: document.getElementById('app')! });
void app.start();
