// The browser test's host: Headlamp's own sidebar, route switcher, Redux store, query client
// and plugin registry, from the @kinvolk/headlamp-plugin package, with the built plugin
// (dist/main.js) loaded the way Headlamp loads plugins: a script evaluated against
// window.pluginLib. Only the desktop app's chrome (app bar, cluster chooser, settings) is left out.
//
// Headlamp's modules import each other in cycles (KubeObject, the classes extending it, the
// store and the components). Evaluated from the common components first, every base class is
// defined before its subclasses (worked out from the import graph of the package's lib/); from
// the store or lib/k8s first, ReplicaSet is evaluated before KubeObject and the page fails.
// eslint-disable-next-line simple-import-sort/imports
import * as CommonComponents from '@kinvolk/headlamp-plugin/lib/components/common';
import '@kinvolk/headlamp-plugin/lib/i18n/config';
import store from '@kinvolk/headlamp-plugin/lib/redux/stores/store';
import * as MuiMaterial from '@mui/material';
import { ThemeProvider } from '@mui/material/styles';
import * as MuiMaterialStyles from '@mui/material/styles';
import { QueryClientProvider } from '@tanstack/react-query';
import * as Iconify from '@iconify/react';
import * as Lodash from 'lodash';
import * as Notistack from 'notistack';
import React from 'react';
import * as ReactDOM from 'react-dom';
import { createRoot } from 'react-dom/client';
import * as ReactJSX from 'react/jsx-runtime';
import * as ReactRedux from 'react-redux';
import * as ReactRouter from 'react-router-dom';
import * as Recharts from 'recharts';
import RouteSwitcher from '@kinvolk/headlamp-plugin/lib/components/App/RouteSwitcher';
import { lightTheme } from '@kinvolk/headlamp-plugin/lib/components/App/defaultAppThemes';
import Sidebar from '@kinvolk/headlamp-plugin/lib/components/Sidebar/Sidebar';
import * as K8s from '@kinvolk/headlamp-plugin/lib/lib/k8s';
import * as ApiProxy from '@kinvolk/headlamp-plugin/lib/lib/k8s/apiProxy';
import * as Crd from '@kinvolk/headlamp-plugin/lib/lib/k8s/crd';
import { queryClient } from '@kinvolk/headlamp-plugin/lib/lib/queryClient';
import * as Router from '@kinvolk/headlamp-plugin/lib/lib/router';
import { setStore } from '@kinvolk/headlamp-plugin/lib/lib/router/createRouteURL';
import { createMuiTheme } from '@kinvolk/headlamp-plugin/lib/lib/themes';
import * as Utils from '@kinvolk/headlamp-plugin/lib/lib/util';
import * as registry from '@kinvolk/headlamp-plugin/lib/plugin/registry';
import { setConfig } from '@kinvolk/headlamp-plugin/lib/redux/configSlice';

declare global {
  interface Window {
    pluginLib: Record<string, unknown>;
  }
}

window.pluginLib = {
  ApiProxy,
  K8s,
  Crd: { ...Crd, __esModule: true },
  CommonComponents,
  MuiMaterial: { ...MuiMaterial, styles: MuiMaterialStyles },
  React,
  ReactJSX,
  ReactDOM,
  Recharts,
  ReactRouter,
  ReactRedux,
  Router,
  Utils,
  Iconify,
  Lodash,
  Notistack,
  ...registry,
};

async function main() {
  // Headlamp's backend answers /config with the clusters it knows; the test's server does too.
  const config = await (await fetch('/config')).json();
  store.dispatch(setConfig({ clusters: config.clusters }));
  // Route URLs are looked up in the store, as Headlamp's app start-up arranges.
  setStore(store);

  const source = await (await fetch('/plugins/kiln/main.js')).text();
  // eslint-disable-next-line no-new-func
  new Function('pluginLib', source)(window.pluginLib);

  createRoot(document.getElementById('root')!).render(
    <ReactRedux.Provider store={store}>
      <QueryClientProvider client={queryClient}>
        <ThemeProvider theme={createMuiTheme(lightTheme)}>
          <ReactRouter.BrowserRouter>
            <MuiMaterial.CssBaseline />
            <div style={{ display: 'flex' }}>
              <Sidebar />
              <main style={{ flexGrow: 1, padding: 16 }} id="main">
                <RouteSwitcher requiresToken={() => false} />
              </main>
            </div>
          </ReactRouter.BrowserRouter>
        </ThemeProvider>
      </QueryClientProvider>
    </ReactRedux.Provider>
  );
}

main().catch(e => {
  document.body.textContent = `shell failed: ${e}`;
  console.error(e);
});
